"""Per-token rewards of one sampled response: the one place that states the reward formula.

    r_t = Σ_{ℓ ∈ C, j(ℓ) = t} dense(ℓ)                      line rewards at reward tokens
        + [t = N−1] · (R_pass if passed else R_fail)         unit-test outcome on the last token
        − β · k1_t                                            KL to the reference (added by the learner)

    dense(ℓ) = (λ(pass) / T) · clip(s(ℓ), lo, hi)            form "psgpo" (PSGPO)
             = (λ(pass) / T) · min(clip(s(ℓ)), 0)            form "nonpositive" (never rewards a line)
             = λ(pass) · (clip(s(ℓ)) − clip(s(ℓ_prev)))       form "progress" (telescopes to λ·s_last)
    λ(pass) = λ_pass (0.025) for a passing response, λ_fail (0.25) for a failing one

* Lines follow `prm_jax.lines`: blank lines are not lines; C = the code (non-comment) lines and
  T = |C| (`normalize_by="code_lines"`; "all_lines" counts comments too, which lets comments
  dilute a negative sum — kept to show why it is not the default); comment lines get exactly 0.
* j(ℓ) comes from the *sampled* tokens' text offsets; an EOS token is not text, so a final line
  without a newline ends on the last text token and only the outcome sits on the EOS.
* s(ℓ) is the PRM output at prompt position P + j(ℓ) of the sampled sequence (read by the
  learner's experience pass).
* A truncated response (stop reason "length") is scored as it is (`truncated="score"`, the
  program is executed) or masked (`"mask"`); its unterminated last line gets no dense reward.
* Several lines ending in one token add their rewards there.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib

DENSE_FORMS = ("psgpo", "nonpositive", "progress")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RewardConfig:
    # Unit-test outcome reward.
    outcome_pass: float = 1.0
    outcome_fail: float = 0.0
    # Dense PRM line rewards: on/off, scale for failing/passing responses, form, normalisation.
    dense: bool = True
    lambda_fail: float = 0.25
    lambda_pass: float = 0.025
    dense_form: str = "psgpo"
    normalize_by: str = "code_lines"
    # PRM outputs are clipped to the label range before use.
    prm_clip: tuple[float, float] = (-1.0, 1.0)
    # "score" (execute and score truncated responses as they are) or "mask" (leave them out).
    truncated: str = "score"
    # Responses with no text (only an EOS): "mask" (left out and counted) or "score" (a failing
    # program: outcome_fail on the EOS). Masking makes an all-empty policy an absorbing state
    # (no gradient leaves it); scoring pushes away from stopping at once.
    empty: str = "mask"

    def __post_init__(self):
        if self.dense_form not in DENSE_FORMS:
            raise ValueError(f"dense_form={self.dense_form!r}; expected one of {DENSE_FORMS}")
        if self.normalize_by not in ("code_lines", "all_lines"):
            raise ValueError(f"normalize_by={self.normalize_by!r}; expected code_lines or all_lines")
        if self.truncated not in ("score", "mask"):
            raise ValueError(f"truncated={self.truncated!r}; expected score or mask")
        if self.empty not in ("score", "mask"):
            raise ValueError(f"empty={self.empty!r}; expected score or mask")
        if self.prm_clip[0] > self.prm_clip[1]:
            raise ValueError(f"prm_clip={self.prm_clip}: low exceeds high")


def text_offsets(offsets: Sequence[tuple[int, int]], stop_reason: str) -> list[tuple[int, int]]:
    """The offsets of the response's text tokens: the sampler's EOS entry (an empty span) dropped."""
    offsets = [tuple(o) for o in offsets]
    return offsets[:-1] if stop_reason == "eos" and offsets else offsets


def scored_lines(response: str, offsets: Sequence[tuple[int, int]], stop_reason: str):
    """(lines, reward token of each line) for the lines that can earn a dense reward: every
    non-blank line, except the unterminated last line of a truncated response."""
    text = text_offsets(offsets, stop_reason)
    lines = lines_lib.split_lines(response)
    if not lines or not text:
        return [], []
    tokens = lines_lib.reward_tokens(lines, text)
    if stop_reason == "length" and not lines[-1].has_newline:
        lines, tokens = lines[:-1], tokens[:-1]
    return lines, tokens


def token_rewards(num_tokens: int, lines: Sequence[lines_lib.Line], tokens: Sequence[int],
                  prm_scores: Sequence[float], passed: bool, config: RewardConfig,
                  num_all_lines: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(outcome, dense) per-token reward vectors of length `num_tokens` (module docstring).

    lines/tokens: from `scored_lines`; prm_scores: the PRM value at each line's reward token;
    num_all_lines: the response's non-blank line count (for T under "all_lines").
    """
    outcome = _outcome_position(num_tokens) * np.float32(config.outcome_pass if passed
                                                         else config.outcome_fail)
    dense = np.zeros(num_tokens, np.float32)
    if num_tokens == 0 or not config.dense or not lines:
        return outcome, dense
    lam = config.lambda_pass if passed else config.lambda_fail
    code = _code_lines(lines)
    if config.normalize_by == "code_lines":
        T = len(code)
    else:
        T = num_all_lines if num_all_lines is not None else len(lines)
    s = np.clip(np.asarray(prm_scores, np.float64), *config.prm_clip)
    values = np.zeros(len(lines))
    previous = 0.0
    for i in code:
        if config.dense_form == "psgpo":
            values[i] = lam / max(T, 1) * s[i]
        elif config.dense_form == "nonpositive":
            values[i] = lam / max(T, 1) * min(s[i], 0.0)
        else:  # progress
            values[i] = lam * (s[i] - previous)
            previous = s[i]
    dense = lines_lib.scatter_rewards(num_tokens, tokens, values)
    return outcome, dense


def reward_positions(num_tokens: int, lines: Sequence[lines_lib.Line], tokens: Sequence[int],
                     config: RewardConfig) -> tuple[np.ndarray, np.ndarray]:
    """(outcome_at, dense_at): 0/1 vectors of length `num_tokens` marking where `token_rewards`
    places each reward source — the last token for the outcome, the reward tokens of the code
    lines for the dense term (none when `config.dense` is off). Leave-one-out baselines that work
    per reward entry (PRIME) need these positions: a baseline subtracted at every token would
    make the advantage depend on the response's length."""
    dense_at = np.zeros(num_tokens, np.float32)
    if num_tokens and config.dense:
        for i in _code_lines(lines):
            dense_at[tokens[i]] = 1.0
    return _outcome_position(num_tokens), dense_at


def _outcome_position(num_tokens: int) -> np.ndarray:
    """1 on the response's last token (where the unit-test outcome sits), 0 elsewhere."""
    at = np.zeros(num_tokens, np.float32)
    if num_tokens:
        at[-1] = 1.0
    return at


def _code_lines(lines: Sequence[lines_lib.Line]) -> list[int]:
    """Indices of the lines that earn dense rewards (comment lines earn exactly 0)."""
    return [i for i, line in enumerate(lines) if not line.is_comment]
