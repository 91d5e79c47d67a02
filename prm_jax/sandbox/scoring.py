"""Host-side verdicts: turn a fork server's raw report into an `ExecutionResult`.

Assert runs: the verdict records come only from the judge process (the program has no way to
write them); a run passes only with a load record, one ok record per test in order and the
judge's `done`. Records the judge would never write are the sandbox's fault (`SandboxFault`,
scored as an infrastructure error by the pool), never a pass. IO runs: stdout alone is
compared, here on the host; stderr is kept for the report.
"""

from __future__ import annotations

import math
import re
import signal

from prm_jax.sandbox.types import ExecutionResult, Job, Limits, TestResult

_FLOAT_TOL = 1e-6


_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?")


def tokens_match(actual: str, expected: str) -> bool:
    """One whitespace-separated token as a judge compares it.

    Equal strings match. An integer expected token matches only an integer token of the same
    value (no tolerance: 1000014129 is not 1000013129). A decimal/exponent expected token
    matches a plain decimal number within 1e-6 absolute or relative tolerance. What `float()`
    accepts but a judge would not (underscores, `inf`, `nan`, `infinity`, whitespace) is never a
    number; `inf`/`nan` match only themselves.
    """
    if actual == expected:
        return True
    if _INT.fullmatch(expected):
        return _INT.fullmatch(actual) is not None and int(actual) == int(expected)
    if _FLOAT.fullmatch(expected) and _FLOAT.fullmatch(actual):
        fa, fe = float(actual), float(expected)
        return math.isfinite(fa) and math.isfinite(fe) and math.isclose(
            fa, fe, rel_tol=_FLOAT_TOL, abs_tol=_FLOAT_TOL)
    return False


def outputs_match(actual: str, expected: str) -> bool:
    """Whitespace-tolerant comparison as LiveCodeBench/APPS define it.

    Lines are compared after stripping surrounding whitespace, ignoring leading/trailing blank
    lines and `\\r`; failing that, the whitespace-separated tokens are compared pairwise with
    `tokens_match` (exact integers; tolerance only where the expected token is a decimal).
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
    return len(a) == len(e) and all(tokens_match(x, y) for x, y in zip(a, e))


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


_LOAD_STATUS = {"syntax": "syntax_error", "memory": "memory"}


class SandboxFault(RuntimeError):
    """The sandbox itself failed (its judge or server misbehaved): an infrastructure error."""


def _records(report: dict) -> tuple[dict | None, list[dict], bool]:
    """(load record, test records, done) from the judge's records; only the judge writes them,
    so anything unexpected is the sandbox's fault."""
    load, tests, done = None, [], False
    for r in report.get("records", []):
        kind = r.get("t") if isinstance(r, dict) else None
        if kind == "judge_error":
            raise SandboxFault(f"the judge failed: {r.get('msg')}")
        if kind == "load" and load is None and not tests:
            load = r
        elif kind == "test" and load is not None and not done and r.get("i") == len(tests):
            tests.append(r)
        elif kind == "done" and load is not None and not done:
            done = True
        else:
            raise SandboxFault(f"unexpected judge record {str(r)[:200]}")
    return load, tests, done


def _test_result(i: int, r: dict | None) -> TestResult:
    if r is None:
        return TestResult(index=i, passed=False, error="not_run")
    ok = r.get("ok") is True
    return TestResult(index=i, passed=ok, error="" if ok else str(r.get("kind", "runtime")),
                      message=str(r.get("msg", ""))[:700], time_s=float(r.get("s", 0.0)),
                      program_defined=bool(r.get("pd", False)))


def _why(code) -> str:
    if isinstance(code, int) and code < 0:
        return f" (killed by {_signal_name(code)})"
    return ""


def score_assert(job: Job, report: dict, limits: Limits) -> ExecutionResult:
    """The verdict of an assert run: only the judge's records can make it `passed`."""
    n = len(job.tests)
    load, records, done = _records(report)
    tests = tuple(_test_result(i, records[i] if i < len(records) else None) for i in range(n))

    def result(status, message):
        return ExecutionResult(id=job.id, status=status, tests=tests, message=message,
                               time_s=report.get("wall_s", 0.0), output_tail=report.get("output", ""))

    program_exit = report.get("exit")
    over_memory = report.get("memory_exceeded") or any(t.error == "memory" for t in tests) or (
        program_exit == -signal.SIGKILL and report.get("max_rss_kb", 0) > 0.9 * limits.memory_mb * 1024)
    if report.get("timeout"):
        return result("timeout", f"wall-clock limit of {job.timeout_s or limits.timeout_s}s reached")
    if report.get("output_limited"):
        return result("output_limit", f"output exceeded {limits.output_limit_bytes} bytes")
    if over_memory and not (done and all(t.passed for t in tests)):
        return result("memory", f"memory limit of {limits.memory_mb} MiB reached")
    if program_exit == -signal.SIGXCPU and not (done and all(t.passed for t in tests)):
        return result("timeout", "CPU time limit reached")
    if load is None:
        judge_exit = report.get("judge_exit")
        if isinstance(judge_exit, int) and judge_exit < 0:
            return result("runtime_error", f"the program stopped the judge before it loaded"
                                           f"{_why(judge_exit)}")
        raise SandboxFault("the judge ended without a record")
    if not load.get("ok"):
        kind = str(load.get("kind", "runtime"))
        return result(_LOAD_STATUS.get(kind, "runtime_error"), f"program failed to load: {load.get('msg')}")
    finished = len(records) == n or (job.stop_on_first_failure and records
                                     and records[-1].get("ok") is not True)
    if not (done and finished):
        return result("runtime_error", "the program stopped the judge before all tests ran"
                                       f"{_why(report.get('judge_exit'))}")
    if all(t.passed for t in tests):
        return result("passed", "")
    failed = [t for t in tests if not t.passed]
    first = failed[0]
    status = "failed"
    if first.error in ("runtime", "recursion", "exit") and all(t.error == first.error for t in failed):
        status = "runtime_error"
    return result(status, f"{len(failed)}/{n} tests failed; first: test {first.index}: "
                          f"{first.message or first.error}")


def score_io(job: Job, report: dict, limits: Limits) -> ExecutionResult:
    runs = {r["i"]: r for r in report.get("io", []) if isinstance(r, dict)}
    tests = []
    statuses = []
    for i, (_, expected) in enumerate(job.io):
        r = runs.get(i)
        if r is None:
            tests.append(TestResult(index=i, passed=False, error="not_run"))
            continue
        code, out, err = r.get("exit"), str(r.get("stdout", "")), str(r.get("stderr", ""))
        t = float(r.get("s", 0.0))
        if r.get("timeout") or code == -signal.SIGXCPU:
            tests.append(TestResult(index=i, passed=False, error="timeout", time_s=t))
            statuses.append("timeout")
        elif r.get("output_limited"):
            tests.append(TestResult(index=i, passed=False, error="output_limit", time_s=t))
            statuses.append("output_limit")
        elif code == 4 or r.get("memory_exceeded") or (
                code == -signal.SIGKILL and r.get("max_rss_kb", 0) > 0.9 * limits.memory_mb * 1024):
            tests.append(TestResult(index=i, passed=False, error="memory", time_s=t, message=err[-300:]))
            statuses.append("memory")
        elif code == 3:
            tests.append(TestResult(index=i, passed=False, error="syntax", message=err[-500:], time_s=t))
            statuses.append("syntax_error")
        elif code != 0:
            why = _signal_name(code) if isinstance(code, int) and code < 0 else f"exit status {code}"
            tests.append(TestResult(index=i, passed=False, error="runtime", time_s=t,
                                    message=f"{why}: {err[-300:]}"))
            statuses.append("runtime_error")
        elif outputs_match(out, expected):
            tests.append(TestResult(index=i, passed=True, time_s=t))
        else:
            tests.append(TestResult(index=i, passed=False, error="wrong_output", time_s=t,
                                    message=f"expected {expected[:200]!r}, got {out[:200]!r}"
                                            + (f"; stderr: {err[-200:]!r}" if err else "")))
            statuses.append("failed")
    passed = len(tests) == len(job.io) and all(t.passed for t in tests)
    if passed:
        status, message = "passed", ""
    else:
        status = statuses[0] if statuses else "failed"
        first = next(t for t in tests if not t.passed)
        message = f"test {first.index}: {first.error} {first.message}".strip()
    tail = "".join(f"[input {r.get('i')} stderr]\n{r.get('stderr')}\n" for r in runs.values()
                   if r.get("stderr"))
    return ExecutionResult(id=job.id, status=status, tests=tuple(tests), message=message,
                           time_s=report.get("wall_s", 0.0), output_tail=tail[-4096:])
