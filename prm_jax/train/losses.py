"""Loss functions (pure): each takes (model, batch) and returns (scalar loss, metrics dict)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from prm_jax.models.logprobs import LOGITS_CHUNK, lm_logprobs


def next_token_loss(model, batch, *,
                    logits_chunk: int | None = LOGITS_CHUNK) -> tuple[jax.Array, dict]:
    """Mean next-token NLL over target positions: −Σ_t m_t·log p(x_{t+1}|x_≤t) / Σ_t m_t.

    batch: `tokens` `[B,T]` int, `mask` `[B,T]` (real tokens), `loss_mask` `[B,T]` (tokens to
    predict, e.g. response tokens only for SFT; defaults to `mask`). The log-probs come from
    `lm_logprobs`: `logits_chunk` sequence positions of logits at a time (0/None: the full
    `[B,T,V]` logits at once).
    """
    tokens, mask = batch["tokens"], batch["mask"].astype(bool)
    loss_mask = batch.get("loss_mask", batch["mask"]).astype(jnp.float32)
    logp_BxTm1 = lm_logprobs(model, tokens, mask, start=0, stop=tokens.shape[1] - 1,
                             chunk=logits_chunk)
    weights = loss_mask[:, 1:] * mask[:, :-1].astype(jnp.float32)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = -(logp_BxTm1 * weights).sum() / count
    return loss, {"loss": loss, "tokens": weights.sum()}


def prm_values(model, tokens, mask, response_start):
    """A scalar-head model's values `[B,T]`; a PRM with a likelihood term also reads each
    row's response start (batch key `response_start`); other models (any callable with the
    `(tokens, mask_BxT=)` signature) are called without it."""
    if getattr(model, "likelihood_clip", 0.0):
        return model(tokens, mask_BxT=mask.astype(bool), response_start_B=response_start)[0]
    return model(tokens, mask_BxT=mask.astype(bool))[0]


def prm_mse_loss(model, batch) -> tuple[jax.Array, dict]:
    """Mean squared error between the scalar head and line labels in {+1, 0, −1}, on line-end
    (reward) tokens only: Σ m_t (v_t − y_t)² / Σ m_t (PSGPO's choice)."""
    values = prm_values(model, batch["tokens"], batch["mask"], batch.get("response_start"))
    loss, metrics = _line_mse(values, batch["targets"], batch["target_mask"])
    return loss, {"loss": loss, **metrics}


def _line_mse(values, targets, target_mask) -> tuple[jax.Array, dict]:
    """Σ m_t (v_t − y_t)² / Σ m_t, and the sign accuracy on non-neutral lines and line count."""
    weights = target_mask.astype(jnp.float32)
    count = jnp.maximum(weights.sum(), 1.0)
    mse = (weights * (values - targets) ** 2).sum() / count
    correct = weights * (jnp.sign(values) == jnp.sign(targets)) * (targets != 0)
    nonzero = jnp.maximum((weights * (targets != 0)).sum(), 1.0)
    return mse, {"line_accuracy": correct.sum() / nonzero, "lines": weights.sum()}


# Bradley–Terry sharpness and default weight of the counterfactual pair term
# (prm_mse_pair_loss): a score gap of 1 between the right and the wrong line costs
# softplus(−4)/4 ≈ 0.005.
PAIR_SCALE = 4.0
PAIR_WEIGHT = 1.0


def prm_mse_pair_loss(model, batch, pair_weight: float = PAIR_WEIGHT) -> tuple[jax.Array, dict]:
    """`prm_mse_loss` on each row's own lines plus, for counterfactual pairs (`prm.pairs`: a
    failing one-line variant and its correct reference, same prefix), a Bradley–Terry term on
    the changed line i:  w · Σ_valid softplus(−k·(v_ref,i − v_var,i)) / (k · Σ valid),
    k = PAIR_SCALE, w = `pair_weight`. Batch arrays are [B, 2, T] (slot 0 the row, slot 1 its
    reference), `pair_pos` [B, 2] the line's reward positions, `pair_valid` [B]."""
    b, two, t = batch["tokens"].shape
    flat = {k: batch[k].reshape(b * two, t) for k in ("tokens", "mask", "targets", "target_mask")}
    starts = batch["response_start"].reshape(b * two) if "response_start" in batch else None
    values = prm_values(model, flat["tokens"], flat["mask"], starts)
    mse, line_metrics = _line_mse(values, flat["targets"], flat["target_mask"])
    v = values.reshape(b, two, t)
    pos = batch["pair_pos"].astype(jnp.int32)
    own = jnp.take_along_axis(v[:, 0], pos[:, :1], axis=1)[:, 0]
    ref = jnp.take_along_axis(v[:, 1], pos[:, 1:], axis=1)[:, 0]
    margin = ref - own
    valid = batch["pair_valid"].astype(jnp.float32)
    pairs = jnp.maximum(valid.sum(), 1.0)
    pair = (valid * jax.nn.softplus(-PAIR_SCALE * margin)).sum() / (PAIR_SCALE * pairs)
    loss = mse + pair_weight * pair
    return loss, {"loss": loss, "mse": mse, "pair_loss": pair,
                  "pair_accuracy": (valid * (margin > 0)).sum() / pairs, "pairs": valid.sum(),
                  **line_metrics}


def prm_bce_loss(model, batch) -> tuple[jax.Array, dict]:
    """Binary cross-entropy of sigmoid(v_t) against (y_t + 1) / 2 on non-neutral line-end tokens."""
    values = prm_values(model, batch["tokens"], batch["mask"], batch.get("response_start"))
    weights = batch["target_mask"].astype(jnp.float32) * (batch["targets"] != 0)
    labels = (batch["targets"] + 1.0) / 2.0
    per_token = optax.losses.sigmoid_binary_cross_entropy(values, labels)
    count = jnp.maximum(weights.sum(), 1.0)
    loss = (weights * per_token).sum() / count
    correct = weights * ((values > 0) == (labels > 0.5))
    return loss, {"loss": loss, "line_accuracy": correct.sum() / count, "lines": weights.sum()}
