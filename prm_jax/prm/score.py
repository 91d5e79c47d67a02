"""PRM scoring API: one score per non-blank line (pictures: `prm_jax.prm.line_picture`)."""

from __future__ import annotations

from typing import Sequence

from prm_jax import lines as lines_lib
from prm_jax.models.sharded import ShardedModel


def score_lines(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], *,
                batch_size: int = 16, bucket: int = 64, mesh=None) -> list[list[float]]:
    """For each (prompt, response): the PRM value at each non-blank line's reward token.

    `model` is a scalar-head model or a `ShardedModel` of one (reused across calls)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
    sharded = model if isinstance(model, ShardedModel) else ShardedModel(model, mesh)
    encoded = [lines_lib.encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    return sharded.values_at([e.ids for e in encoded], [e.reward_positions for e in encoded],
                             batch_size=batch_size, bucket=bucket,
                             response_starts=[e.prompt_len for e in encoded])
