"""PRM examples with line-token targets: every token of a line regresses to the line's label.

The standard PRM example (`train.examples.prm_example`) puts a line's label on its reward token
only. Here every token of line k — from the token after line k−1's reward token (the first
response token for k = 0) through line k's reward token — gets target y_k, so the gradient also
reaches the token where a wrong line departs from the right one. Scoring is unchanged: a line's
score is still the value at its reward token (`lines.py` contract), whose target is still y_k
(the last line's label where several lines end in one token).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib
from prm_jax.train.examples import pad_to, prm_example


def line_token_targets(num_tokens: int, first_response_token: int, reward_positions: Sequence[int],
                       labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(targets, mask) over `num_tokens` positions: y_k on every token of line k."""
    targets = np.zeros(num_tokens, np.float32)
    mask = np.zeros(num_tokens, bool)
    start = first_response_token
    for position, label in zip(reward_positions, labels):
        lo = min(start, position)
        targets[lo:position + 1] = label
        mask[lo:position + 1] = True
        start = max(start, position + 1)
    return targets, mask


def dense_prm_examples(rows: Sequence[dict], tokenizer, seq_len: int) -> tuple[list[dict], int]:
    """Like `train.examples.prm_examples`, with line-token targets."""
    out, skipped = [], 0
    for row in rows:
        if not row["lines"]:
            continue
        example = prm_example(tokenizer, row, seq_len)
        if example is None:
            skipped += 1
            continue
        enc = lines_lib.encode(tokenizer, row["prompt"], row["response"])
        targets, mask = line_token_targets(len(enc.ids), enc.prompt_len, enc.reward_positions,
                                           [l["label"] for l in row["lines"]])
        example["targets"] = pad_to(targets, seq_len)
        example["target_mask"] = pad_to(mask.astype(np.int32), seq_len)
        out.append(example)
    return out, skipped
