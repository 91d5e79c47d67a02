"""Sampled responses → padded device-ready arrays, line reward positions and masks.

Layout of one rollout batch (B rows = prompts × samples, padded to a multiple of the mesh's
batch split with masked dummy rows):

    tokens_BxL   [ left-padded prompt (P columns) | response, right-padded (N columns) ]
    response token t of a row sits at column P + t; its log-prob is read from the logits at
    column P + t − 1, the critic's V_t at P + t − 1, the PRM's score of a line ending on token j
    at column P + j (so a PRM copied into the critic means "value after this line").

N is the configured max_new_tokens and P a power-of-two bucket, so the learner compiles once.
A sample is *masked* (its response mask is all 0: no loss, no whitening statistic, no group
baseline) when the sandbox had an infrastructure error, when its response is empty (unless the
config scores empty responses as failures), or when it
was truncated and the config masks truncated responses. Masked samples are counted, never scored.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from prm_jax.rl.rewards import RewardConfig, reward_positions, scored_lines, token_rewards

MASK_INFRA, MASK_EMPTY, MASK_TRUNCATED = "infrastructure_error", "empty", "truncated"


@dataclasses.dataclass
class RolloutBatch:
    tokens: np.ndarray  # [B, P+N] int32
    attention: np.ndarray  # [B, P+N] bool
    response_mask: np.ndarray  # [B, N] float32, 0 for masked samples and padding
    group: np.ndarray  # [B] prompt index of each row (dummy rows: their own group)
    num_groups: int
    prompt_width: int  # P
    response_ids: list[list[int]]
    texts: list[str]
    stop_reasons: list[str]
    passed: list[bool | None]
    mask_reason: list[str | None]  # why a sample is masked (None = scored)
    lines: list[list]  # the lines that can earn dense rewards (rewards.scored_lines)
    reward_tokens: list[list[int]]
    num_lines: list[int]  # all non-blank lines
    sampler_logprobs: np.ndarray  # [B, N] temperature-1 log-probs from the sampler

    @property
    def size(self) -> int:
        """Real (non-dummy) rows."""
        return len(self.texts)

    @property
    def response_width(self) -> int:
        return self.response_mask.shape[1]


def _bucket(n: int, minimum: int = 16) -> int:
    width = minimum
    while width < n:
        width *= 2
    return width


def build_rollout(prompt_ids: Sequence[Sequence[int]], out, passed: Sequence[bool | None], *,
                  max_new_tokens: int, reward_config: RewardConfig, row_multiple: int = 1,
                  pad_id: int = 0) -> RolloutBatch:
    """prompt_ids: token ids of each prompt (as the sampler encoded them); out: the sampler's
    `SampleBatch` (rows in any order, `prompt_index` says whose); passed: sandbox verdict per row
    (None = infrastructure error)."""
    rows = len(out.texts)
    padded_rows = -(-rows // row_multiple) * row_multiple
    P = _bucket(max(len(prompt_ids[i]) for i in out.prompt_index))
    N = max_new_tokens
    tokens = np.full((padded_rows, P + N), pad_id, np.int32)
    attention = np.zeros((padded_rows, P + N), bool)
    response_mask = np.zeros((padded_rows, N), np.float32)
    sampler_lp = np.zeros((padded_rows, N), np.float32)
    group = np.arange(padded_rows, dtype=np.int32) + len(prompt_ids)  # dummy rows: own groups
    reasons, all_lines, all_tokens, num_lines = [], [], [], []
    for r in range(rows):
        prompt, ids = list(prompt_ids[out.prompt_index[r]]), list(out.token_ids[r])
        if len(ids) > N:
            raise ValueError(f"row {r} has {len(ids)} response tokens > max_new_tokens={N}")
        tokens[r, P - len(prompt):P] = prompt
        tokens[r, P:P + len(ids)] = ids
        attention[r, P - len(prompt):P + len(ids)] = True
        group[r] = out.prompt_index[r]
        sampler_lp[r, :len(ids)] = out.logprobs[r][:len(ids)]
        lines, line_tokens = scored_lines(out.texts[r], out.offsets[r], out.stop_reasons[r])
        all_lines.append(lines)
        all_tokens.append(line_tokens)
        num_lines.append(sum(1 for line in out.texts[r].split("\n") if line.strip()))
        if passed[r] is None:
            reason = MASK_INFRA
        elif not ids or (not out.texts[r].strip() and reward_config.empty == "mask"):
            reason = MASK_EMPTY
        elif out.stop_reasons[r] == "length" and reward_config.truncated == "mask":
            reason = MASK_TRUNCATED
        else:
            reason = None
        reasons.append(reason)
        if reason is None:
            response_mask[r, :len(ids)] = 1.0
    return RolloutBatch(tokens=tokens, attention=attention, response_mask=response_mask,
                        group=group, num_groups=len(prompt_ids) + padded_rows, prompt_width=P,
                        response_ids=[list(x) for x in out.token_ids], texts=list(out.texts),
                        stop_reasons=list(out.stop_reasons), passed=list(passed),
                        mask_reason=reasons, lines=all_lines, reward_tokens=all_tokens,
                        num_lines=num_lines, sampler_logprobs=sampler_lp)


def reward_parts(batch: RolloutBatch, prm_values_BxN: np.ndarray | None,
                 config: RewardConfig) -> dict[str, np.ndarray]:
    """Per-token `outcome` and `dense` rewards `[B, N]` (rewards.token_rewards per row; the PRM
    value of a line is `prm_values_BxN[row, reward token]`) and where each source places its
    rewards, `outcome_at` and `dense_at` (rewards.reward_positions). Masked rows are all 0."""
    B, N = batch.response_mask.shape
    outcome = np.zeros((B, N), np.float32)
    dense = np.zeros((B, N), np.float32)
    outcome_at = np.zeros((B, N), np.float32)
    dense_at = np.zeros((B, N), np.float32)
    for r in range(batch.size):
        if batch.mask_reason[r] is not None:
            continue
        n = len(batch.response_ids[r])
        tokens = batch.reward_tokens[r]
        scores = ([float(prm_values_BxN[r, t]) for t in tokens] if prm_values_BxN is not None
                  else [0.0] * len(tokens))
        o, d = token_rewards(n, batch.lines[r], tokens, scores, bool(batch.passed[r]), config,
                             num_all_lines=batch.num_lines[r])
        outcome[r, :n], dense[r, :n] = o, d
        outcome_at[r, :n], dense_at[r, :n] = reward_positions(n, batch.lines[r], tokens, config)
    return {"outcome": outcome, "dense": dense, "outcome_at": outcome_at, "dense_at": dense_at}
