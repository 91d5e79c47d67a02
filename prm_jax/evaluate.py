"""Functional-correctness evaluation: pass@k with the unbiased estimator, per-problem results.

    python -m prm_jax.evaluate --dataset humaneval --samples samples.jsonl --k 1,10 \\
        --out results.jsonl
    python -m prm_jax.evaluate --dataset mbpp --problems mbpp.jsonl --samples s.jsonl --k 1
    python -m prm_jax.evaluate --dataset synthetic --problems "split=test,num_problems=100" ...

Sample rows: {"task_id": ..., "completion": ...} (for MBPP and stdin/stdout problems the
completion is the whole program). Output rows, one per problem: task_id, n, correct,
pass@k for each k ≤ n, and per-sample status/message. Samples whose run hit an infrastructure
error are excluded from n (and counted), never scored as failures. The summary adds a breakdown
by response length (lines) and, when problems carry `meta.horizon`, by horizon.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from typing import Iterable, Sequence

import numpy as np

from prm_jax.data import sources
from prm_jax.data.problem import Problem, ProblemError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 − C(n−c, k) / C(n, k), computed as a stable product."""
    if k <= 0 or n <= 0:
        raise ValueError(f"need n > 0 and k > 0, got n={n}, k={k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def read_samples(path: str, problems: dict[str, Problem]) -> dict[str, list[str]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"samples file {path} does not exist")
    samples: dict[str, list[str]] = collections.defaultdict(list)
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProblemError(f"{where}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ProblemError(f"{where}: expected a JSON object")
            task_id, completion = row.get("task_id"), row.get("completion")
            if isinstance(task_id, int) and f"mbpp/{task_id}" in problems:
                task_id = f"mbpp/{task_id}"
            if not isinstance(task_id, str):
                raise ProblemError(f"{where}: field 'task_id' must be a string")
            if task_id not in problems:
                raise ProblemError(f"{where}: task_id {task_id!r} is not in the problem set")
            if not isinstance(completion, str):
                raise ProblemError(f"{where}: field 'completion' must be a string")
            samples[task_id].append(completion)
    return dict(samples)


def _length_bucket(completion: str) -> str:
    lines = sum(1 for line in completion.splitlines() if line.strip())
    for upper in (2, 4, 8, 16, 32):
        if lines <= upper:
            return f"<={upper} lines"
    return ">32 lines"


def evaluate(problems: Sequence[Problem], samples: dict[str, list[str]], ks: Iterable[int], *,
             pool=None, timeout_s: float | None = None, workers: int | None = None) -> dict:
    """Runs every sample; returns {"summary": ..., "problems": [per-problem rows]}."""
    from prm_jax.sandbox import SandboxPool

    ks = sorted(set(ks))
    by_id = {p.task_id: p for p in problems}
    jobs, owners = [], []
    for task_id, completions in samples.items():
        for j, completion in enumerate(completions):
            jobs.append(by_id[task_id].job(completion, job_id=f"{task_id}#{j}", timeout_s=timeout_s))
            owners.append((task_id, j))
    own_pool = pool is None
    pool = pool or SandboxPool(workers=workers)
    try:
        results = pool.run_many(jobs)
    finally:
        if own_pool:
            pool.close()
    per_problem: dict[str, list] = collections.defaultdict(list)
    for (task_id, j), result in zip(owners, results):
        per_problem[task_id].append((j, result))
    rows, infra = [], 0
    groups = {"length": collections.defaultdict(lambda: [0, 0]),
              "horizon": collections.defaultdict(lambda: [0, 0])}
    for problem in problems:
        if problem.task_id not in per_problem:
            continue
        runs = sorted(per_problem[problem.task_id], key=lambda x: x[0])
        scored = [(j, r) for j, r in runs if r.scorable]
        infra += len(runs) - len(scored)
        n, c = len(scored), sum(r.passed for _, r in scored)
        row = {"task_id": problem.task_id, "n": n, "correct": c,
               "infrastructure_errors": len(runs) - len(scored),
               "samples": [{"index": j, "passed": r.passed, "status": r.status,
                            "message": r.message[:300]} for j, r in runs]}
        for k in ks:
            if n >= k:
                row[f"pass@{k}"] = pass_at_k(n, c, k)
        rows.append(row)
        completions = samples[problem.task_id]
        for j, r in scored:
            bucket = groups["length"][_length_bucket(completions[j])]
            bucket[0] += r.passed
            bucket[1] += 1
            if "horizon" in problem.meta:
                h = groups["horizon"][int(problem.meta["horizon"])]
                h[0] += r.passed
                h[1] += 1
    summary = {"problems": len(rows), "samples": sum(r["n"] for r in rows),
               "infrastructure_errors": infra}
    for k in ks:
        eligible = [r[f"pass@{k}"] for r in rows if f"pass@{k}" in r]
        if eligible:
            summary[f"pass@{k}"] = float(np.mean(eligible))
            summary[f"pass@{k}_problems"] = len(eligible)
    summary["by_length"] = {b: {"pass_rate": c / t, "samples": t}
                            for b, (c, t) in sorted(groups["length"].items())}
    if groups["horizon"]:
        summary["by_horizon"] = {h: {"pass_rate": c / t, "samples": t}
                                 for h, (c, t) in sorted(groups["horizon"].items())}
    return {"summary": summary, "problems": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prm_jax.evaluate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=sources.DATASETS)
    parser.add_argument("--problems", default=None,
                        help="problem file (not needed for humaneval); for synthetic a JSONL file "
                             "or a spec such as 'split=test,num_problems=100'")
    parser.add_argument("--samples", required=True)
    parser.add_argument("--k", default="1")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--timeout_s", type=float, default=None)
    parser.add_argument("--no_challenge_tests", action="store_true", help="MBPP: test_list only")
    parser.add_argument("--skip_invalid", action="store_true",
                        help="skip malformed problem rows (counted in the summary)")
    args = parser.parse_args(argv)
    try:
        ks = [int(k) for k in args.k.split(",")]
        if any(k <= 0 for k in ks):
            raise ValueError
    except ValueError:
        print(f"error: --k must be a comma-separated list of positive integers, got {args.k!r}",
              file=sys.stderr)
        return 2
    try:
        extra = {"include_challenge": not args.no_challenge_tests} if args.dataset == "mbpp" else {}
        problems, report = sources.load(args.dataset, args.problems,
                                        skip_invalid=args.skip_invalid, **extra)
        samples = read_samples(args.samples, {p.task_id: p for p in problems})
    except (ProblemError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = evaluate(problems, samples, ks, timeout_s=args.timeout_s, workers=args.workers)
    tmp = args.out + ".partial"
    with open(tmp, "w") as f:
        for row in result["problems"]:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, args.out)
    summary = dict(result["summary"], source=report.summary())
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
