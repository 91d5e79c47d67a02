"""Ground-truth line labels for the synthetic suite — for evaluation only, never a training label
(except in an explicitly named "oracle labels" upper-bound arm).

A prefix of m non-blank lines of a response is *recoverable* if some suffix of the task's
reference steps, appended after it, makes the program pass the hidden tests:

    recoverable(m) = ∃ j ∈ [0, H]:  prefix(m) + reference steps j..H−1  passes
                     (j = H appends `return xs`)

This is the semantic oracle "does applying the remaining reference steps after this prefix still
give the expected outputs?", generalised over j so that a line doing two steps at once, or a
no-op line, is judged by what it leaves in `xs` (the suite's only data flow). The empty prefix
is recoverable (j = 0 is the reference) and the whole response is recoverable iff it passes.
Appended lines are indented by 4 spaces; a prefix ending inside a block header is unrecoverable.
Every candidate runs in the sandbox (responses are untrusted).

The first unrecoverable line f = min{i : line i is a step line and not recoverable(i + 1)}
(the last step line of a failing response if every proper prefix is recoverable); per-line
labels follow the labels' one rule (`rows.line_labels`): +1 before f, −1 from f on, 0 for
comments — exactly what a labeller with infinite, perfect completions would write.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from prm_jax import lines as lines_lib
from prm_jax.data import synthetic
from prm_jax.data.problem import Problem
from prm_jax.prm.rows import line_labels


@dataclasses.dataclass(frozen=True)
class Truth:
    """Ground truth for one response (indices are over non-blank lines)."""

    # recoverable[i]: the prefix through line i (inclusive) is recoverable.
    recoverable: tuple[bool, ...]
    # The first unrecoverable step line; None for a passing response.
    first_error: int | None
    # Per-line labels (+1 / 0 / −1) by `rows.line_labels`.
    labels: tuple[int, ...]
    passed: bool
    # An infrastructure error left some verdict unknown: not ground truth, leave it out.
    masked: bool = False


def reference_suffix(steps: Sequence[synthetic.Step], j: int) -> str:
    """Reference lines for steps j..H−1 (`return xs` when j = H), newline-terminated."""
    if j >= len(steps):
        return "    return xs\n"
    return synthetic.solution(list(steps[j:]))


def candidates(problem: Problem, response: str) -> list[tuple[int, str]]:
    """(m, completion) for every proper non-empty prefix m = 1..T−1 and every suffix j."""
    steps = synthetic.steps_of(problem)
    lines = lines_lib.split_lines(response)
    out = []
    for m in range(1, len(lines)):
        prefix = lines_lib.prefix_through(response, lines, m, newline=True)
        out += [(m, prefix + reference_suffix(steps, j)) for j in range(len(steps) + 1)]
    return out


def first_error(lines: Sequence[lines_lib.Line], recoverable: Sequence[bool]) -> int | None:
    """min{i : step line i with recoverable[i] False}; the last step line if only the whole
    response is unrecoverable; None if every prefix is recoverable."""
    steps = [l.step for l in lines if not l.is_comment]
    for i in steps:
        if not recoverable[i]:
            return i
    return None if all(recoverable) or not steps else steps[-1]


def truth_from_verdicts(response: str, passed: bool, prefix_ok: dict[int, bool | None]) -> Truth:
    """Truth from per-prefix verdicts (`prefix_ok[m]`, m = 1..T−1; None = infrastructure error)."""
    lines = lines_lib.split_lines(response)
    T = len(lines)
    masked = any(v is None for v in prefix_ok.values())
    recoverable = tuple(bool(prefix_ok.get(i + 1)) for i in range(T - 1)) + ((bool(passed),) if T else ())
    first = None if passed else first_error(lines, recoverable)
    labels = tuple(l["label"] for l in line_labels(lines, first))
    return Truth(recoverable, first, labels, bool(passed), masked)


def ground_truth(items: Sequence[tuple[Problem, str, bool | None]], verifier) -> list[Truth]:
    """Truth for each (synthetic problem, response, passed); `passed` None is executed first.

    `verifier.verify([(problem, completion)])` → [True | False | None] (the labellers' Verifier)."""
    unknown = [i for i, (_, _, passed) in enumerate(items) if passed is None]
    verdicts = verifier.verify([(items[i][0], items[i][1]) for i in unknown])
    passed_of = [passed for _, _, passed in items]
    for i, v in zip(unknown, verdicts):
        passed_of[i] = v
    jobs, where = [], []
    for index, (problem, response, _) in enumerate(items):
        if passed_of[index]:
            continue  # a passing response: every prefix is recoverable
        for m, completion in candidates(problem, response):
            jobs.append((problem, completion))
            where.append((index, m))
    prefix_ok: list[dict[int, bool | None]] = [{} for _ in items]
    for (index, m), v in zip(where, verifier.verify(jobs)):
        current = prefix_ok[index].get(m, False)
        prefix_ok[index][m] = True if (current or v) else (None if v is None or current is None else False)
    out = []
    for (problem, response, _), passed, ok in zip(items, passed_of, prefix_ok):
        if passed is None:
            lines = lines_lib.split_lines(response)
            out.append(Truth((), None, tuple(0 for _ in lines), False, masked=True))
            continue
        if passed:
            lines = lines_lib.split_lines(response)
            out.append(Truth(tuple(True for _ in lines), None,
                             tuple(l["label"] for l in line_labels(lines, None)), True))
            continue
        out.append(truth_from_verdicts(response, passed, ok))
    return out
