"""Jobs, limits and results of sandboxed execution (the Execution-result contract).

A result's `status` is one of:
  passed                 every test ran to completion and passed (with the harness's evidence)
  failed                 tests ran and at least one failed (assertion or wrong output)
  syntax_error           the program does not compile
  runtime_error          the program raised, exited early, crashed or killed its harness
  timeout                wall-clock or CPU limit reached
  memory                 memory limit reached
  output_limit           the program wrote more than the output limit
  infrastructure_error   the sandbox failed, not the program: never a program failure; retried
                         by the pool and to be masked by callers (`result.scorable` is False)
"""

from __future__ import annotations

import dataclasses
from typing import Any

STATUSES = ("passed", "failed", "syntax_error", "runtime_error", "timeout", "memory",
            "output_limit", "infrastructure_error")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Limits:
    """Per-run resource limits."""

    # Wall-clock seconds for the whole run (assert tests) or per input (IO tests).
    timeout_s: float = 5.0
    # Memory of the run's program processes together, MiB (each process's address space is
    # capped at this too; see the README's trust model for how the total is enforced).
    memory_mb: int = 1024
    # Bytes the program may write to stdout+stderr (and to any single file).
    output_limit_bytes: int = 1 << 20
    # Processes the sandbox user may own at once (fork-bomb cap).
    max_processes: int = 32

    def __post_init__(self):
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64, got {self.memory_mb!r}")
        if self.output_limit_bytes < 1024:
            raise ValueError(f"output_limit_bytes must be at least 1024, got {self.output_limit_bytes!r}")
        if self.max_processes < 4:
            raise ValueError(f"max_processes must be at least 4, got {self.max_processes!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """One program and its tests: `tests` (assert statements, optional `setup`) or `io` pairs."""

    id: str
    program: str
    tests: tuple[str, ...] = ()
    setup: str = ""
    io: tuple[tuple[str, str], ...] = ()  # (stdin, expected stdout)
    timeout_s: float | None = None
    # Skip the remaining tests after the first failure (IO jobs: after the first crash or
    # timeout; wrong outputs are only judged on the host, after all inputs ran).
    stop_on_first_failure: bool = False
    # Kept for compatibility; no effect. Program-defined objects never reach the tests' code:
    # they are compared by type name and instance attributes, and such tests are marked
    # `TestResult.program_defined`.
    strict: bool = True

    def __post_init__(self):
        if not isinstance(self.program, str):
            raise TypeError(f"job {self.id!r}: program must be a string")
        if bool(self.tests) == bool(self.io):
            raise ValueError(f"job {self.id!r}: give exactly one of `tests` (asserts) or `io` pairs")
        for i, t in enumerate(self.tests):
            if not isinstance(t, str):
                raise TypeError(f"job {self.id!r}: test {i} must be a string, got {type(t).__name__}")
        for i, pair in enumerate(self.io):
            if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise TypeError(f"job {self.id!r}: io pair {i} must be (input: str, output: str)")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"job {self.id!r}: timeout_s must be positive, got {self.timeout_s!r}")

    @property
    def kind(self) -> str:
        return "assert" if self.tests else "io"

    @property
    def num_tests(self) -> int:
        return len(self.tests) or len(self.io)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestResult:
    index: int
    passed: bool
    # "" when passed; else assertion | wrong_output | runtime | exit | memory | recursion |
    # timeout | output_limit | syntax | not_run
    error: str = ""
    message: str = ""
    time_s: float = 0.0
    # The test compared program-defined objects (by type name and instance attributes) or
    # checked their type: its verdict relies on program-defined behaviour.
    program_defined: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    id: str
    status: str
    tests: tuple[TestResult, ...] = ()
    message: str = ""
    time_s: float = 0.0
    output_tail: str = ""
    attempts: int = 1

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def scorable(self) -> bool:
        """False for infrastructure errors: mask them, never score them as failures."""
        return self.status != "infrastructure_error"

    @property
    def num_passed(self) -> int:
        return sum(t.passed for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "passed": self.passed, "status": self.status,
                "num_passed": self.num_passed, "num_tests": len(self.tests),
                "message": self.message, "time_s": round(self.time_s, 4), "attempts": self.attempts,
                "tests": [t.to_dict() for t in self.tests], "output_tail": self.output_tail}
