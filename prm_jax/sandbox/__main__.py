"""Evaluate a JSONL file of programs in the sandbox.

  python -m prm_jax.sandbox --in runs.jsonl --out results.jsonl [--workers N] [--timeout_s S]

Input rows: {"id": str, "program": str, and either "tests": [assert statements...] (optional
"setup": str) or "io": [{"input": str, "output": str}, ...]; optional "timeout_s": float}.
Output rows, in input order: {"id", "passed", "status", "num_passed", "num_tests", "message",
"time_s", "attempts", "tests": [{"index", "passed", "error", "message", "time_s"}], ...}.
Every row is validated before anything runs; a malformed row is an error naming its line and
field, and a test that does not compile (or could skip its asserts: a top-level `return`,
`yield` or `break`) names its line and test. The output location is checked before any job runs;
results go to `<out>.partial` and are renamed to `<out>` only when complete, and an existing
`<out>` is never replaced without `--overwrite`. Every error is one line on stderr and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
import time

from prm_jax.jsonio import check_output_path, iter_jsonl, write_jsonl_atomic
from prm_jax.sandbox.isolation import SandboxUnavailable
from prm_jax.sandbox.pool import SandboxPool, validate_job
from prm_jax.sandbox.types import Job, Limits

_KNOWN = {"id", "program", "tests", "setup", "io", "timeout_s", "stop_on_first_failure", "strict"}


class InputError(ValueError):
    pass


def parse_row(row: dict, where: str, stop_on_first_failure: bool, strict: bool) -> Job:
    unknown = sorted(set(row) - _KNOWN)
    if unknown:
        raise InputError(f"{where}: unknown fields {unknown}; expected {sorted(_KNOWN)}")
    for field in ("id", "program"):
        if not isinstance(row.get(field), str):
            raise InputError(f"{where}: field {field!r} must be a string")
    tests, io = row.get("tests"), row.get("io")
    if (tests is None) == (io is None):
        raise InputError(f"{where}: give exactly one of 'tests' or 'io'")
    if tests is not None and (not isinstance(tests, list) or not tests or
                              not all(isinstance(t, str) for t in tests)):
        raise InputError(f"{where}: field 'tests' must be a non-empty list of strings")
    pairs = ()
    if io is not None:
        if not isinstance(io, list) or not io:
            raise InputError(f"{where}: field 'io' must be a non-empty list")
        for i, pair in enumerate(io):
            if (not isinstance(pair, dict) or not isinstance(pair.get("input"), str)
                    or not isinstance(pair.get("output"), str)):
                raise InputError(f"{where}: io[{i}] must be {{'input': str, 'output': str}}")
        pairs = tuple((p["input"], p["output"]) for p in io)
    timeout = row.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise InputError(f"{where}: field 'timeout_s' must be a positive number")
    setup = row.get("setup", "")
    if not isinstance(setup, str):
        raise InputError(f"{where}: field 'setup' must be a string")
    try:
        job = Job(id=row["id"], program=row["program"], tests=tuple(tests or ()), setup=setup,
                  io=pairs, timeout_s=float(timeout) if timeout else None,
                  stop_on_first_failure=bool(row.get("stop_on_first_failure", stop_on_first_failure)),
                  strict=bool(row.get("strict", strict)))
        validate_job(job)
        return job
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: {e}") from e


def read_jobs(path: str, stop_on_first_failure: bool = False, strict: bool = True) -> list[Job]:
    jobs, seen = [], set()
    for where, row in iter_jsonl(path, "input file"):
        job = parse_row(row, where, stop_on_first_failure, strict)
        if job.id in seen:
            raise InputError(f"{where}: duplicate id {job.id!r}")
        seen.add(job.id)
        jobs.append(job)
    return jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prm_jax.sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--in", dest="inp", required=True, help="input JSONL")
    parser.add_argument("--out", required=True, help="output JSONL")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: CPUs)")
    parser.add_argument("--timeout_s", type=float, default=Limits.timeout_s)
    parser.add_argument("--memory_mb", type=int, default=Limits.memory_mb)
    parser.add_argument("--output_limit_bytes", type=int, default=Limits.output_limit_bytes)
    parser.add_argument("--stop_on_first_failure", action="store_true")
    parser.add_argument("--no_strict", action="store_true",
                        help="allow comparisons with program-defined types in assert tests")
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "unshare", "rlimits"])
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args(argv)
    try:
        check_output_path(args.out, overwrite=args.overwrite)
        if args.workers is not None and args.workers < 1:
            raise InputError(f"--workers must be at least 1, got {args.workers}")
        jobs = read_jobs(args.inp, args.stop_on_first_failure, not args.no_strict)
        limits = Limits(timeout_s=args.timeout_s, memory_mb=args.memory_mb,
                        output_limit_bytes=args.output_limit_bytes)
    except (InputError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    counts: dict[str, int] = {}
    try:
        with SandboxPool(workers=args.workers, limits=limits, isolation_level=args.isolation) as pool:
            results = pool.run_many(jobs)
    except SandboxUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    try:
        write_jsonl_atomic(args.out, [result.to_dict() for result in results])
    except OSError as e:
        print(f"error: could not write {args.out}: {e}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - start
    passed = counts.get("passed", 0)
    print(f"{len(results)} programs in {elapsed:.2f}s ({len(results) / max(elapsed, 1e-9):.1f}/s), "
          f"isolation {pool.level}: {passed} passed; "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
