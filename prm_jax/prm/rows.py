"""The label row every labelling method writes (one JSONL line per response) and the one rule
that turns a first-error index into per-line labels."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from prm_jax import lines as lines_lib


def line_labels(lines: Sequence[lines_lib.Line], first_error: int | None) -> list[dict]:
    """Comment lines 0; step lines before the first error +1, from it on −1; all +1 when there
    is no error (`first_error` None)."""
    out = []
    for line in lines:
        if line.is_comment:
            label = lines_lib.NEUTRAL
        elif first_error is None or line.step < first_error:
            label = lines_lib.GOOD
        else:
            label = lines_lib.BAD
        out.append({"text": line.text, "label": label, "kind": line.kind})
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelRow:
    task_id: str
    # Unique per labelled response (the labeller's resume key).
    response_id: str
    prompt: str
    response: str
    passed: bool
    # "binary_search", "monte_carlo" or "mutation".
    method: str
    # One {text, label, kind} per non-blank response line (see `line_labels`).
    lines: list[dict]
    # Step index of the first unrecoverable line; None for a passing response.
    first_error_line: int | None
    # Whether the problem was solved from the empty prefix ("revised only" selection).
    empty_prefix_solvable: bool | None
    rollouts: int
    executions: int
    infrastructure_errors: int = 0
    # A masked row had an infrastructure error: it is never used as a label.
    masked: bool = False
    # Mutation rows: the operator that made the variant.
    operator: str | None = None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        if out["operator"] is None:
            del out["operator"]
        return out
