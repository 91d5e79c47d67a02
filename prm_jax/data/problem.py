"""The Problem record and program assembly — the one place that decides what program runs.

Assembly modes:
  "append"  program = prompt + completion (HumanEval-style: the prompt is a function header and
            the completion its body), tests are assert strings (`check(entry_point)` included).
  "program" program = completion (MBPP and stdin/stdout problems: the model writes the whole
            program; the prompt is a description).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from prm_jax.sandbox.types import Job

TEST_KINDS = ("assert", "io")
ASSEMBLY_MODES = ("append", "program")


class ProblemError(ValueError):
    """A problem record is malformed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Problem:
    task_id: str
    # What the model is given.
    prompt: str
    # Function under test, or None for stdin/stdout programs.
    entry_point: str | None
    # "assert": tests are assert statements; "io": tests are (stdin, expected stdout) pairs.
    test_kind: str
    tests: tuple
    # Code run after the program, before the tests (imports, helpers).
    setup: str = ""
    # A correct solution in the same form as a completion ("" if unknown).
    reference: str = ""
    # "append" or "program" (see module docstring).
    assembly: str = "append"
    source: str = "jsonl"
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        where = f"problem {self.task_id!r}"
        if not isinstance(self.task_id, str) or not self.task_id:
            raise ProblemError(f"task_id must be a non-empty string, got {self.task_id!r}")
        if not isinstance(self.prompt, str):
            raise ProblemError(f"{where}: prompt must be a string")
        if self.test_kind not in TEST_KINDS:
            raise ProblemError(f"{where}: test_kind={self.test_kind!r}, expected one of {TEST_KINDS}")
        if self.assembly not in ASSEMBLY_MODES:
            raise ProblemError(f"{where}: assembly={self.assembly!r}, expected one of {ASSEMBLY_MODES}")
        if not isinstance(self.tests, (list, tuple)):
            raise ProblemError(f"{where}: tests must be a list, got {type(self.tests).__name__}")
        if not self.tests:
            raise ProblemError(f"{where}: has no tests")
        if self.test_kind == "assert":
            if not all(isinstance(t, str) for t in self.tests):
                raise ProblemError(f"{where}: assert tests must be strings")
        else:
            for i, pair in enumerate(self.tests):
                if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                        or not all(isinstance(x, str) for x in pair)):
                    raise ProblemError(f"{where}: io test {i} must be an (input, output) pair of strings")
            object.__setattr__(self, "tests", tuple(tuple(p) for p in self.tests))
        object.__setattr__(self, "tests", tuple(self.tests))

    # ------------------------------------------------------------------ assembly
    def program(self, completion: str) -> str:
        """The program that runs for `completion`."""
        if self.assembly == "append":
            return self.prompt + completion
        return completion

    def job(self, completion: str, *, job_id: str | None = None, timeout_s: float | None = None,
            strict: bool = True) -> Job:
        """A sandbox job running `completion` against this problem's tests."""
        kwargs = dict(id=job_id or self.task_id, program=self.program(completion),
                      timeout_s=timeout_s, strict=strict)
        if self.test_kind == "assert":
            return Job(tests=self.tests, setup=self.setup, **kwargs)
        return Job(io=self.tests, **kwargs)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tests"] = [list(t) if isinstance(t, tuple) else t for t in self.tests]
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], where: str = "row") -> "Problem":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(row) - fields)
        if unknown:
            raise ProblemError(f"{where}: unknown fields {unknown}; expected {sorted(fields)}")
        missing = [f for f in ("task_id", "prompt", "test_kind", "tests") if f not in row]
        if missing:
            raise ProblemError(f"{where}: missing fields {missing}")
        values = dict(row)
        values.setdefault("entry_point", None)
        try:
            return cls(**values)
        except ProblemError as e:
            raise ProblemError(f"{where}: {e}") from e
        except TypeError as e:
            raise ProblemError(f"{where}: {e}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
