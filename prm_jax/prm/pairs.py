"""Counterfactual training pairs for the PRM: a failing single-line variant of a correct
program next to that program, compared at the changed line.

A mutation row (`label_by_mutation`: one line of a correct response replaced, labelled by
execution) and its task's reference row share every line before the changed line i, so a causal
PRM's scores at line i depend on the same prefix and differ only through line i. The pair loss
(`train.losses.prm_mse_pair_loss`) asks for score(reference, i) > score(variant, i) — the
contrast the counterfactual probe measures — on top of the per-line regression, so the head
cannot fit the labels from task difficulty or position alone.

A pair is formed only where line i is labelled +1 in the reference and −1 in the variant (a
variant that still passes, or that changes a comment, gives no pair). Every row stays an
example of its own; rows without a pair carry `pair_valid = 0`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib
from prm_jax.train.examples import prm_example

REFERENCE_OPERATOR = "reference"


def changed_line(reference: dict, variant: dict) -> int | None:
    """Index of the first line whose text differs, if both rows have it."""
    ref, var = reference["lines"], variant["lines"]
    for i, (a, b) in enumerate(zip(ref, var)):
        if a["text"] != b["text"]:
            return i
    return None


def pair_line(reference: dict, variant: dict) -> int | None:
    """The line the pair compares (see module docstring), or None."""
    if reference["prompt"] != variant["prompt"]:
        return None
    i = changed_line(reference, variant)
    if i is None or reference["lines"][i]["label"] != 1 or variant["lines"][i]["label"] != -1:
        return None
    return i


def _reward_positions(tokenizer, row: dict) -> list[int]:
    return lines_lib.encode(tokenizer, row["prompt"], row["response"]).reward_positions


def pair_examples(rows: Sequence[dict], tokenizer, seq_len: int) -> tuple[list[dict], int]:
    """Examples of shape [2, seq_len]: slot 0 is the row itself (its line targets), slot 1 its
    task's reference (no targets) with `pair_pos` = (line i's reward position in the row, in the
    reference) and `pair_valid`. Returns (examples, rows skipped as too long)."""
    references = {r["task_id"]: r for r in rows if r.get("operator") == REFERENCE_OPERATOR}
    out, skipped = [], 0
    cache: dict[str, dict | None] = {}
    for row in rows:
        if not row["lines"]:
            continue
        own = prm_example(tokenizer, row, seq_len)
        if own is None:
            skipped += 1
            continue
        reference = references.get(row["task_id"])
        i = pair_line(reference, row) if reference is not None and reference is not row else None
        partner = None
        if i is not None:
            key = reference["response_id"]
            if key not in cache:
                cache[key] = prm_example(tokenizer, reference, seq_len)
            partner = cache[key]
        if partner is None:
            partner, pos, valid = own, (0, 0), 0.0
        else:
            pos = (_reward_positions(tokenizer, row)[i], _reward_positions(tokenizer, reference)[i])
            valid = 1.0
        no_targets = np.zeros_like(partner["target_mask"])
        out.append({
            "tokens": np.stack([own["tokens"], partner["tokens"]]),
            "mask": np.stack([own["mask"], partner["mask"]]),
            "targets": np.stack([own["targets"], partner["targets"]]),
            "target_mask": np.stack([own["target_mask"], no_targets]),
            "response_start": np.stack([own["response_start"], partner["response_start"]]),
            "pair_pos": np.asarray(pos, np.int32),
            "pair_valid": np.float32(valid),
        })
    return out, skipped
