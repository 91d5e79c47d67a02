"""Training examples as fixed-length arrays: SFT (prompt → response) and PRM (line labels).

Prompt and response are tokenized separately (prompt with special tokens, response without),
exactly as the sampler sees them; sequences are right-padded to `seq_len`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib


def pad_to(array: np.ndarray, length: int, value=0) -> np.ndarray:
    if len(array) > length:
        raise ValueError(f"sequence of {len(array)} tokens exceeds seq_len={length}")
    return np.concatenate([array, np.full(length - len(array), value, array.dtype)])


def sft_example(tokenizer, prompt: str, response: str, seq_len: int) -> dict | None:
    """tokens = prompt + response + EOS; loss on response and EOS. None if too long."""
    enc = lines_lib.encode(tokenizer, prompt, response)
    ids = np.asarray(enc.ids + [tokenizer.eos_token_id], np.int32)
    if len(ids) > seq_len:
        return None
    loss_mask = np.zeros(len(ids), np.int32)
    loss_mask[enc.prompt_len:] = 1
    return {"tokens": pad_to(ids, seq_len), "mask": pad_to(np.ones(len(ids), np.int32), seq_len),
            "loss_mask": pad_to(loss_mask, seq_len)}


def sft_examples(problems: Sequence, tokenizer, seq_len: int) -> tuple[list[dict], int]:
    """Examples from the problems' references; returns (examples, number skipped as too long)."""
    out = [sft_example(tokenizer, p.prompt, p.reference, seq_len) for p in problems if p.reference]
    kept = [e for e in out if e is not None]
    return kept, len(out) - len(kept)


def prm_example(tokenizer, row: dict, seq_len: int) -> dict | None:
    """Targets = line labels at each line's reward token (lines.py contract);
    `response_start` = the first response token's position."""
    enc = lines_lib.encode(tokenizer, row["prompt"], row["response"])
    if not enc.response_len or len(enc.ids) > seq_len:
        return None
    if len(enc.lines) != len(row["lines"]):
        raise ValueError(f"labels row {row['response_id']!r}: {len(row['lines'])} labels for "
                         f"{len(enc.lines)} lines")
    targets, target_mask = lines_lib.scatter_targets(len(enc.ids), enc.reward_positions,
                                                     [l["label"] for l in row["lines"]])
    ids = np.asarray(enc.ids, np.int32)
    full_targets, full_mask = targets, target_mask.astype(np.int32)
    return {"tokens": pad_to(ids, seq_len), "mask": pad_to(np.ones(len(ids), np.int32), seq_len),
            "targets": pad_to(full_targets, seq_len), "target_mask": pad_to(full_mask, seq_len),
            "response_start": np.int32(enc.prompt_len)}


def prm_examples(rows: Sequence[dict], tokenizer, seq_len: int) -> tuple[list[dict], int]:
    out = [prm_example(tokenizer, row, seq_len) for row in rows if row["lines"]]
    kept = [e for e in out if e is not None]
    return kept, len(out) - len(kept)
