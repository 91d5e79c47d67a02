"""Temperature, top-k and nucleus (top-p) filtering of next-token logits without a full sort, and
sampling from the result with two uniform numbers per row.

`warp_logits(logits, T, k, p)` returns `logits / T` with every filtered entry set to −inf:
* top-k keeps the k largest;
* top-p (nucleus) keeps token i of the descending order while the probability mass strictly
  before it is < p, so the most likely token is always kept; the kept set is every logit
  ≥ the last kept one (ties are kept together).

Sorting a vocabulary of 151,936 entries every decode step costs more than the model at small
batch, so the nucleus threshold is found in two exact ways instead:
* the `NUCLEUS_CANDIDATES` largest logits (`lax.top_k`): when their mass reaches p, the nucleus
  ends among them and its threshold is read off their cumulative mass;
* otherwise (flat distributions) a bisection over the float32 bit patterns for the smallest logit
  value x with mass(logits > x) < p — which is the threshold: 32 masked sums over the vocabulary,
  no sort. Only the rows that need it are bisected: gathered into FALLBACK_ROWS, 2·FALLBACK_ROWS,
  … rows (`fallback_sizes`), or the whole batch.
  With top-k on, the nucleus threshold is only needed among the k candidates (the top-k
  threshold dominates otherwise), so the bisection never runs.

`sample` draws by inverse CDF over vocabulary blocks (two uniforms per row: one picks the block
by cumulative mass, the other the token inside it), instead of Gumbel-max, which needs a random
number per vocabulary entry — 25× the cost at Qwen's vocabulary on a CPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

NUCLEUS_CANDIDATES = 16
# Rows bisected on their own when only a few rows of a batch have a nucleus beyond the candidates.
FALLBACK_ROWS = 4
# Vocabulary block of the inverse-CDF sampler.
SAMPLE_BLOCK = 512


def _ordered_key(x: jax.Array) -> jax.Array:
    """float32 → uint32 whose unsigned order is the float order (−inf < … < +inf)."""
    bits = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    signed = jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)
    return lax.bitcast_convert_type(signed, jnp.uint32) ^ jnp.uint32(0x80000000)


def _from_ordered_key(key: jax.Array) -> jax.Array:
    signed = lax.bitcast_convert_type(key ^ jnp.uint32(0x80000000), jnp.int32)
    return lax.bitcast_convert_type(jnp.where(signed < 0, signed ^ jnp.int32(0x7FFFFFFF), signed),
                                    jnp.float32)


def _bisect_nucleus_threshold(logits_BxV, probs_BxV, top_p) -> jax.Array:
    """Smallest logit value x of each row with Σ_{logit > x} prob < top_p (exact, 32 steps)."""
    lo = _ordered_key(jnp.min(logits_BxV, axis=-1))
    hi = _ordered_key(jnp.max(logits_BxV, axis=-1))

    def step(_, bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        above = jnp.sum(jnp.where(logits_BxV > _from_ordered_key(mid)[:, None], probs_BxV, 0.0), -1)
        small = above < top_p
        return jnp.where(small, lo, mid + 1), jnp.where(small, mid, hi)

    _, hi = lax.fori_loop(0, 32, step, (lo, hi))
    return _from_ordered_key(hi)


def _thresholds(logits_BxV, top_k: int, top_p, use_top_p: bool, active_B=None) -> jax.Array:
    """Per row, the smallest logit kept by top-k and top-p together (exact for `active_B` rows;
    the others, e.g. finished or padding rows, are never bisected)."""
    vocab = logits_BxV.shape[-1]
    n_candidates = min(top_k, vocab) if top_k else min(NUCLEUS_CANDIDATES, vocab)
    candidates_BxC, _ = lax.top_k(logits_BxV, n_candidates)
    threshold_B = candidates_BxC[:, -1] if top_k else jnp.full(logits_BxV.shape[:1], -jnp.inf)
    if not use_top_p:
        return threshold_B
    log_z_B1 = jax.nn.logsumexp(logits_BxV, axis=-1, keepdims=True)
    probs_BxC = jnp.exp(candidates_BxC - log_z_B1)
    mass_before = jnp.cumsum(probs_BxC, axis=-1) - probs_BxC
    kept = (mass_before < top_p).at[:, 0].set(True)
    last_kept = jnp.sum(kept, axis=-1) - 1
    nucleus_B = jnp.take_along_axis(candidates_BxC, last_kept[:, None], axis=-1)[:, 0]
    if not top_k and n_candidates < vocab:
        # The nucleus ends among the candidates iff their mass reaches top_p.
        inside_B = mass_before[:, -1] + probs_BxC[:, -1] >= top_p
        if active_B is not None:
            inside_B = inside_B | ~active_B
        nucleus_B = _bisect_rows_outside(logits_BxV, log_z_B1, top_p, nucleus_B, inside_B)
    return jnp.maximum(threshold_B, nucleus_B)


def fallback_sizes(batch: int) -> tuple[int, ...]:
    """Row counts the bisection runs on when only some rows of a batch need it: FALLBACK_ROWS,
    doubling, below the batch (whose own size takes every row)."""
    sizes, size = [], FALLBACK_ROWS
    while size < batch:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def _bisect_rows_outside(logits_BxV, log_z_B1, top_p, nucleus_B, inside_B) -> jax.Array:
    """`nucleus_B` with the rows not `inside_B` replaced by their bisected threshold: nothing when
    every row is inside; else the rows outside, gathered into the smallest of `fallback_sizes`
    that holds them (its other rows are inside ones, left as they are), or every row — so the
    bisection's cost follows the number of rows that need it."""
    batch = logits_BxV.shape[0]
    sizes = fallback_sizes(batch)
    outside = jnp.sum(~inside_B)

    def some(rows):
        _, index_R = lax.top_k((~inside_B).astype(jnp.float32), rows)
        sub_RxV, sub_log_z = logits_BxV[index_R], log_z_B1[index_R]
        bisected = _bisect_nucleus_threshold(sub_RxV, jnp.exp(sub_RxV - sub_log_z), top_p)
        return nucleus_B.at[index_R].set(jnp.where(inside_B[index_R], nucleus_B[index_R], bisected))

    def every():
        bisected = _bisect_nucleus_threshold(logits_BxV, jnp.exp(logits_BxV - log_z_B1), top_p)
        return jnp.where(inside_B, nucleus_B, bisected)

    branches = [lambda: nucleus_B] + [functools.partial(some, rows) for rows in sizes] + [every]
    return lax.switch(fallback_branch(outside, sizes), branches)


def fallback_branch(outside, sizes: tuple[int, ...]):
    """Which bisection `outside` rows take: 0 none; i (1 ≤ i ≤ len(sizes)) the i-th of `sizes`,
    the first that holds them; len(sizes) + 1 every row."""
    needed = 1 + (jnp.sum(jnp.asarray(sizes) < outside) if sizes else 0)
    return jnp.where(outside == 0, 0, needed)


def warp_logits(logits_BxV: jax.Array, temperature, top_k: int, top_p, use_top_p: bool,
                active_B: jax.Array | None = None) -> jax.Array:
    """Temperature, then top-k, then top-p (nucleus) filtering; filtered entries are −inf.

    top-p keeps token i (in descending order) if the mass strictly before it is < top_p, so
    the most likely token is always kept. `top_k` and `use_top_p` are static. `active_B`
    (optional) marks the rows whose result is used: the others (finished or padding rows) do
    not make the batch pay for a bisection, and their filtering is not exact.
    """
    logits = logits_BxV.astype(jnp.float32) / jnp.maximum(temperature, 1e-6)
    if not (top_k or use_top_p):
        return logits
    threshold_B = _thresholds(logits, top_k, top_p, use_top_p, active_B)
    return jnp.where(logits >= threshold_B[:, None], logits, -jnp.inf)


def _first_true(mask_BxN: jax.Array, fallback_B: jax.Array) -> jax.Array:
    """Index of the first True of each row; `fallback` where a row has none."""
    return jnp.where(jnp.any(mask_BxN, -1), jnp.argmax(mask_BxN, -1), fallback_B).astype(jnp.int32)


def _last_true(mask_BxN: jax.Array) -> jax.Array:
    n = mask_BxN.shape[-1]
    return (n - 1 - jnp.argmax(mask_BxN[:, ::-1], -1)).astype(jnp.int32)


def sample(keys_B: jax.Array, logits_BxV: jax.Array, block: int = SAMPLE_BLOCK) -> jax.Array:
    """One token per row from softmax(logits); see `sample_with_log_prob`."""
    return sample_with_log_prob(keys_B, logits_BxV, block)[0]


def sample_with_log_prob(keys_B: jax.Array, logits_BxV: jax.Array,
                         block: int = SAMPLE_BLOCK) -> tuple[jax.Array, jax.Array]:
    """(token, its log-probability under softmax(logits)) per row: log p = logit − max − log Z,
    from the same pass that draws it. One token per row from softmax(logits) (entries of −inf
    are never drawn), by inverse CDF
    with two uniforms: u₁·Z (Z = Σ exp(logit − max)) picks the block b whose cumulative mass first
    exceeds it, u₂·Z_b (Z_b the mass of b) the token of b whose cumulative mass first exceeds
    that. Each stage resolves float32 uniforms (2⁻²³ of its own total), so a token's probability
    is exact down to ~2⁻²³ of its block's mass rather than of the whole vocabulary's; float
    rounding of the sums can only move a draw between tokens of positive mass."""
    b, vocab = logits_BxV.shape
    pad = (-vocab) % block
    max_B = jnp.max(logits_BxV, axis=-1)
    probs = jnp.exp(logits_BxV - max_B[:, None])
    probs_BxNxK = jnp.pad(probs, ((0, 0), (0, pad))).reshape(b, -1, block)
    block_mass_BxN = probs_BxNxK.sum(-1)
    cumulative_BxN = jnp.cumsum(block_mass_BxN, axis=-1)
    u_Bx2 = jax.vmap(lambda k: jax.random.uniform(k, (2,)))(keys_B)
    positive_BxN = block_mass_BxN > 0
    chosen_B = _first_true((cumulative_BxN > u_Bx2[:, :1] * cumulative_BxN[:, -1:]) & positive_BxN,
                           _last_true(positive_BxN))
    inner_BxK = jnp.take_along_axis(probs_BxNxK, chosen_B[:, None, None], axis=1)[:, 0]
    inner_cumulative = jnp.cumsum(inner_BxK, -1)
    inner_positive = inner_BxK > 0
    token_in_block = _first_true(
        (inner_cumulative > u_Bx2[:, 1:] * inner_cumulative[:, -1:]) & inner_positive,
        _last_true(inner_positive))
    token_B = chosen_B * block + token_in_block
    picked_B = jnp.take_along_axis(logits_BxV, token_B[:, None], axis=-1)[:, 0]
    return token_B, picked_B - max_B - jnp.log(cumulative_BxN[:, -1])
