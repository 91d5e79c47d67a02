"""RL maths as pure JAX functions: masked statistics, GAE, group advantages, PPO losses, KL.

Shapes: `[B,N]` per response token (B samples, N response tokens, right-padded); `mask_BxN` is 1
on real response tokens of scorable samples and 0 elsewhere (padding, masked samples), so masked
samples enter no sum, no whitening statistic and no group baseline. Every function is jittable;
`tests/test_rl_algos.py` checks each against a NumPy port of its reference implementation
(verl `core_algos.py`, the PRIME recipe, tunix `algo_core.py`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


# ------------------------------------------------------------------------------ masked statistics
def masked_sum(x, mask, axis=None):
    return (x * mask).sum(axis=axis)


def masked_mean(x, mask, axis=None):
    """Σ m·x / Σ m (0 where the mask is empty)."""
    return masked_sum(x, mask, axis) / jnp.maximum(mask.sum(axis=axis), 1e-8)


def masked_whiten(x, mask, shift_mean: bool = True):
    """(x − μ)·rsqrt(σ² + 1e−8) over the valid entries, σ² the unbiased variance (verl
    `masked_whiten`); entries outside the mask are returned as 0."""
    mask = mask.astype(jnp.float32)
    n = mask.sum()
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask) * n / jnp.maximum(n - 1, 1.0)
    out = (x - mean) * jax.lax.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def explained_variance(values, returns, mask):
    """1 − Var(R − V) / (Var(R) + 1e−5) over valid tokens (verl's `vf_explained_var`)."""
    mask = mask.astype(jnp.float32)
    var_r = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    diff = returns - values
    var_d = masked_mean((diff - masked_mean(diff, mask)) ** 2, mask)
    return 1.0 - var_d / (var_r + 1e-5)


# ------------------------------------------------------------------------------ advantages
def gae(rewards_BxN, values_BxN, mask_BxN, gamma: float = 1.0, lam: float = 1.0):
    """Generalised advantage estimation (verl `compute_gae_advantage_return`), unwhitened.

        δ_t = r_t + γ·V_next − V_t,   A_t = δ_t + γλ·A_next,   R_t = A_t + V_t
    V_next and A_next carry across masked positions (next = m_t·x_t + (1 − m_t)·next) and are
    0 after the last token (a finished response is terminal). Returns (advantages, returns).
    """
    mask = mask_BxN.astype(jnp.float32)

    def step(carry, xs):
        next_value, next_adv = carry
        r, v, m = xs
        delta = r + gamma * next_value - v
        adv = delta + gamma * lam * next_adv
        next_value = v * m + (1 - m) * next_value
        next_adv = adv * m + (1 - m) * next_adv
        return (next_value, next_adv), next_adv

    zeros = jnp.zeros(rewards_BxN.shape[0], jnp.float32)
    _, adv_NxB = jax.lax.scan(step, (zeros, zeros),
                              (rewards_BxN.T, values_BxN.T, mask.T), reverse=True)
    adv = adv_NxB.T
    return adv * mask, (adv + values_BxN) * mask


def _group_stats(scores_B, scorable_B, group_B, num_groups: int):
    """Per-group count, sum and sum of squares over scorable samples only."""
    w = scorable_B.astype(jnp.float32)
    count = jax.ops.segment_sum(w, group_B, num_groups)
    total = jax.ops.segment_sum(w * scores_B, group_B, num_groups)
    squares = jax.ops.segment_sum(w * scores_B ** 2, group_B, num_groups)
    return count, total, squares


def grpo_advantages(rewards_BxN, mask_BxN, group_B, num_groups: int, *, scale_by_std: bool = True,
                    eps: float = 1e-6):
    """GRPO (verl `compute_grpo_outcome_advantage`): per-sample score = Σ_t r_t, normalised
    within its group, (s − mean_g)/(std_g + eps) with the unbiased std (or not divided: Dr. GRPO),
    broadcast to every token. Groups are samples of one prompt; samples with an empty mask are not
    in any statistic; a group with < 2 scorable samples gets advantage 0."""
    mask = mask_BxN.astype(jnp.float32)
    scorable = mask.sum(-1) > 0
    scores = (rewards_BxN * mask).sum(-1)
    count, total, squares = _group_stats(scores, scorable, group_B, num_groups)
    mean = total / jnp.maximum(count, 1.0)
    var = (squares - count * mean ** 2) / jnp.maximum(count - 1, 1.0)
    std = jnp.sqrt(jnp.maximum(var, 0.0))
    adv = scores - mean[group_B]
    if scale_by_std:
        adv = adv / (std[group_B] + eps)
    adv = jnp.where(scorable & (count[group_B] >= 2), adv, 0.0)
    return adv[:, None] * mask


def rloo_advantages(rewards_BxN, mask_BxN, group_B, num_groups: int):
    """RLOO on the sequence score (verl `compute_rloo_outcome_advantage`): A_i = R_i − mean of the
    other scorable samples of its group, R = Σ_t r_t, broadcast to every token."""
    mask = mask_BxN.astype(jnp.float32)
    scorable = mask.sum(-1) > 0
    scores = (rewards_BxN * mask).sum(-1)
    count, total, _ = _group_stats(scores, scorable, group_B, num_groups)
    n = count[group_B]
    adv = scores - (total[group_B] - scores) / jnp.maximum(n - 1, 1.0)
    adv = jnp.where(scorable & (n >= 2), adv, 0.0)
    return adv[:, None] * mask


def prime_rloo_returns(rewards_BxN, reward_at_BxN, mask_BxN, group_B, num_groups: int):
    """PRIME-style leave-one-out for one reward source (PRIME recipe `compute_rloo_advantage_return`,
    its `masked_rloo`), then returns-to-go:

        r'_{i,t} = r_{i,t}·n/(n−1) − (Σ_j m_j)/(n−1)   at the source's reward entries (reward_at = 1)
        A_{i,t} = Σ_{t' ≥ t} r'_{i,t'}
    where m_j is sample j's mean reward over *its reward entries* and n the group's scorable count.
    For the outcome (one entry, the last token) this is RLOO, R_i − mean_{j≠i} R_j, at every token
    of the response whatever its length; for dense line rewards (entries = code lines' reward
    tokens) it gives every line its own leave-one-out credit. Taking the mean and the baseline
    over every token instead would subtract the baseline once per token, so long responses would
    be penalised for their length. A scorable sample without entries (no code line) has m = 0.
    Groups with n < 2 get 0."""
    mask = mask_BxN.astype(jnp.float32)
    at = reward_at_BxN.astype(jnp.float32) * mask
    scorable = mask.sum(-1) > 0
    per_sample_mean = masked_mean(rewards_BxN, at, axis=-1)
    count, total, _ = _group_stats(per_sample_mean, scorable, group_B, num_groups)
    n = count[group_B][:, None]
    shaped = rewards_BxN * n / jnp.maximum(n - 1, 1.0) - total[group_B][:, None] / jnp.maximum(n - 1, 1.0)
    shaped = jnp.where((n >= 2) & scorable[:, None], shaped, 0.0) * at
    returns = jnp.flip(jnp.cumsum(jnp.flip(shaped, -1), -1), -1)
    return returns * mask


# ------------------------------------------------------------------------------ losses
def kl_penalty(logp, ref_logp, kind: str):
    """Per-token KL estimators of KL(π‖π_ref) from d = logπ − logπ_ref: k1 = d (unbiased),
    k2 = ½d² (biased), k3 = exp(−d) + d − 1 (unbiased, ≥ 0; argument clamped to ±20, value to
    [−10, 10] as in verl)."""
    d = logp - ref_logp
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d * d
    if kind == "k3":
        return jnp.clip(jnp.exp(jnp.clip(-d, -20.0, 20.0)) + d - 1.0, -10.0, 10.0)
    raise ValueError(f"unknown KL estimator {kind!r}; expected k1, k2 or k3")


def ppo_policy_loss(logp, old_logp, advantages, mask, *, clip_low: float = 0.2,
                    clip_high: float = 0.2, clip_c: float = 3.0, denominator=None):
    """PPO clipped surrogate with dual clip (verl `compute_policy_loss_vanilla`), token-mean.

        ρ = exp(clip(logπ − logπ_old, ±20)), L = max(−Â·ρ, −Â·clip(ρ, 1−ε_low, 1+ε_high)),
        and for Â < 0: L = min(L, −Â·c)
    `denominator` (default Σ mask) lets micro-batches share the mini-batch's global token count.
    Returns (loss, metrics: clipfrac, clipfrac_lower, ppo_kl)."""
    mask = mask.astype(jnp.float32)
    den = mask.sum() if denominator is None else denominator
    ratio = jnp.exp(jnp.clip(logp - old_logp, -20.0, 20.0))
    l1 = -advantages * ratio
    l2 = -advantages * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    clipped = jnp.maximum(l1, l2)
    dual = jnp.minimum(-advantages * clip_c, clipped)
    per_token = jnp.where(advantages < 0, dual, clipped)
    metrics = {
        "pg_clipfrac": (mask * (l2 > l1)).sum() / den,
        "pg_clipfrac_lower": (mask * ((clipped > -advantages * clip_c) & (advantages < 0))).sum() / den,
        "ppo_kl": (mask * (old_logp - logp)).sum() / den,
        "ratio_max": jnp.max(jnp.where(mask > 0, ratio, -jnp.inf)),
        "ratio_min": jnp.min(jnp.where(mask > 0, ratio, jnp.inf)),
    }
    return (per_token * mask).sum() / den, metrics


def clipped_value_loss(values, old_values, returns, mask, *, clip: float = 0.5, denominator=None):
    """½·token-mean of max((V − R)², (clip(V, V_old ± ε) − R)²) (verl `compute_value_loss`).
    Returns (loss, metrics: vf_clipfrac)."""
    mask = mask.astype(jnp.float32)
    den = mask.sum() if denominator is None else denominator
    clipped = jnp.clip(values, old_values - clip, old_values + clip)
    a, b = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * (jnp.maximum(a, b) * mask).sum() / den
    return loss, {"vf_clipfrac": (mask * (b > a)).sum() / den}


# Advantage estimators by name: (rewards, values, mask, group, num_groups, config) → (adv, returns).
ESTIMATORS: dict[str, Callable] = {}


def register_estimator(name: str):
    def wrap(fn):
        ESTIMATORS[name] = fn
        return fn
    return wrap


@register_estimator("gae")
def _gae_estimator(parts, values, mask, group, num_groups, *, gamma, lam, whiten):
    adv, returns = gae(parts["outcome"] + parts["dense"] + parts["kl"], values, mask, gamma, lam)
    return (masked_whiten(adv, mask) if whiten else adv), returns


@register_estimator("grpo")
def _grpo_estimator(parts, values, mask, group, num_groups, *, gamma, lam, whiten):
    adv = grpo_advantages(parts["outcome"] + parts["dense"], mask, group, num_groups)
    return adv, jnp.zeros_like(adv)


@register_estimator("rloo")
def _rloo_estimator(parts, values, mask, group, num_groups, *, gamma, lam, whiten):
    """PRIME-style: leave-one-out returns of the outcome and of the dense rewards, each over its
    own reward entries (`parts["outcome_at"]`, `parts["dense_at"]`), summed."""
    adv = (prime_rloo_returns(parts["outcome"], parts["outcome_at"], mask, group, num_groups)
           + prime_rloo_returns(parts["dense"], parts["dense_at"], mask, group, num_groups))
    return adv, jnp.zeros_like(adv)
