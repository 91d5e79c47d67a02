"""Host-side verdicts: turn a fork server's raw report into an `ExecutionResult`.

The host trusts nothing the program could forge: an assert run passes only if the load record,
one ok record per test (indices 0..n-1 in order) and the run's random sentinel are all present.
IO outputs are compared here, never inside the sandbox.
"""

from __future__ import annotations

import math
import signal

from prm_jax.sandbox.types import ExecutionResult, Job, Limits, TestResult

_FLOAT_TOL = 1e-6


def outputs_match(actual: str, expected: str) -> bool:
    """Whitespace-tolerant comparison as LiveCodeBench/APPS define it.

    Lines are compared after stripping surrounding whitespace, ignoring trailing blank lines and
    `\\r`; failing that, the whitespace-separated tokens are compared, numbers with a
    1e-6 absolute/relative tolerance.
    """
    def lines(text):
        out = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
        while out and not out[-1]:
            out.pop()
        while out and not out[0]:
            out.pop(0)
        return out

    if lines(actual) == lines(expected):
        return True
    a, e = actual.split(), expected.split()
    if len(a) != len(e):
        return False
    for x, y in zip(a, e):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not (math.isfinite(fx) and math.isfinite(fy)):
            return False
        if not math.isclose(fx, fy, rel_tol=_FLOAT_TOL, abs_tol=_FLOAT_TOL):
            return False
    return True


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


_LOAD_STATUS = {"syntax": "syntax_error", "memory": "memory"}


def score_assert(job: Job, report: dict, limits: Limits) -> ExecutionResult:
    records = report.get("records", [])
    n = len(job.tests)
    time_s = report.get("wall_s", 0.0)
    tail = report.get("output", "")
    load = next((r for r in records if r.get("t") == "load"), None)

    def result(status, message, tests=()):
        if not tests:
            tests = tuple(TestResult(index=i, passed=False, error="not_run") for i in range(n))
        return ExecutionResult(id=job.id, status=status, tests=tuple(tests), message=message,
                               time_s=time_s, output_tail=tail)


    # The records must be exactly what an undisturbed harness writes: one load, tests 0..k-1
    # in order, one done, one matching sentinel. Anything else was written by someone else.
    kinds = [r.get("t") for r in records]
    test_records = [r for r in records if r.get("t") == "test"]
    well_formed = (
        kinds.count("load") == 1 and kinds.count("done") <= 1 and kinds.count("sentinel") <= 1
        and set(kinds) <= {"load", "test", "done", "sentinel"}
        and [r.get("i") for r in test_records] == list(range(len(test_records)))
        and len(test_records) <= n)
    by_index = {r["i"]: r for r in test_records} if well_formed else {}
    tests = []
    for i in range(n):
        r = by_index.get(i)
        if r is None:
            tests.append(TestResult(index=i, passed=False, error="not_run"))
        else:
            tests.append(TestResult(index=i, passed=bool(r.get("ok") is True),
                                    error="" if r.get("ok") is True else str(r.get("kind", "runtime")),
                                    message=str(r.get("msg", ""))[:500], time_s=float(r.get("s", 0.0))))
    sentinel_ok = any(r.get("t") == "sentinel" and r.get("v") == report.get("sentinel")
                      for r in records)
    done = "done" in kinds
    finished = len(test_records) == n or (
        job.stop_on_first_failure and test_records and test_records[-1].get("ok") is not True)

    if load is not None and not load.get("ok") and not report.get("timeout") and not \
            report.get("output_limited"):
        kind = load.get("kind", "runtime")
        if kind == "bad_test":
            raise ValueError(f"job {job.id!r}: a test does not compile: {load.get('msg')}")
        return result(_LOAD_STATUS.get(kind, "runtime_error"), f"program failed to load: {load.get('msg')}")
    if report.get("timeout"):
        return result("timeout", f"wall-clock limit of {job.timeout_s or limits.timeout_s}s reached", tests)
    exit_code = report.get("exit")
    if report.get("output_limited"):
        return result("output_limit", f"output exceeded {limits.output_limit_bytes} bytes", tests)
    if any(t.error == "memory" for t in tests) or exit_code == -signal.SIGKILL and report.get(
            "max_rss_kb", 0) > 0.9 * limits.memory_mb * 1024:
        return result("memory", f"memory limit of {limits.memory_mb} MiB reached", tests)
    if exit_code == -signal.SIGXCPU:
        return result("timeout", "CPU time limit reached", tests)
    complete = well_formed and done and sentinel_ok and finished
    if not complete:
        if load is None:
            why = "the program ended the harness before it loaded"
        elif not well_formed:
            why = "the harness's record stream was tampered with"
        elif not done:
            why = "the program ended the harness before all tests ran"
        else:
            why = "the harness's completion evidence is missing or forged"
        if isinstance(exit_code, int) and exit_code < 0:
            why += f" (killed by {_signal_name(exit_code)})"
        elif exit_code not in (None, 0, 1):
            why += f" (exit status {exit_code})"
        return result("runtime_error", why, tests)
    if all(t.passed for t in tests):
        return result("passed", "", tests)
    failed = [t for t in tests if not t.passed]
    first = failed[0]
    status = "failed"
    if first.error in ("runtime", "recursion", "exit") and all(t.error == first.error for t in failed):
        status = "runtime_error"
    return result(status, f"{len(failed)}/{n} tests failed; first: test {first.index}: "
                          f"{first.message or first.error}", tests)


def score_io(job: Job, report: dict, limits: Limits) -> ExecutionResult:
    runs = {r["i"]: r for r in report.get("io", [])}
    tests = []
    statuses = []
    for i, (_, expected) in enumerate(job.io):
        r = runs.get(i)
        if r is None:
            tests.append(TestResult(index=i, passed=False, error="not_run"))
            continue
        code, out = r.get("exit"), r.get("stdout", "")
        t = float(r.get("s", 0.0))
        if r.get("timeout") or code == -signal.SIGXCPU:
            tests.append(TestResult(index=i, passed=False, error="timeout", time_s=t))
            statuses.append("timeout")
        elif r.get("output_limited"):
            tests.append(TestResult(index=i, passed=False, error="output_limit", time_s=t))
            statuses.append("output_limit")
        elif code == 4 or (code == -signal.SIGKILL and r.get("max_rss_kb", 0) > 0.9 * limits.memory_mb * 1024):
            tests.append(TestResult(index=i, passed=False, error="memory", time_s=t, message=out[-300:]))
            statuses.append("memory")
        elif code == 3:
            tests.append(TestResult(index=i, passed=False, error="syntax", message=out[-500:], time_s=t))
            statuses.append("syntax_error")
        elif code != 0:
            why = _signal_name(code) if isinstance(code, int) and code < 0 else f"exit status {code}"
            tests.append(TestResult(index=i, passed=False, error="runtime", time_s=t,
                                    message=f"{why}: {out[-300:]}"))
            statuses.append("runtime_error")
        elif outputs_match(out, expected):
            tests.append(TestResult(index=i, passed=True, time_s=t))
        else:
            tests.append(TestResult(index=i, passed=False, error="wrong_output", time_s=t,
                                    message=f"expected {expected[:200]!r}, got {out[:200]!r}"))
            statuses.append("failed")
    passed = len(tests) == len(job.io) and all(t.passed for t in tests)
    if passed:
        status, message = "passed", ""
    else:
        status = statuses[0] if statuses else "failed"
        first = next(t for t in tests if not t.passed)
        message = f"test {first.index}: {first.error} {first.message}".strip()
    return ExecutionResult(id=job.id, status=status, tests=tuple(tests), message=message,
                           time_s=report.get("wall_s", 0.0))
