"""Per-token log-probabilities (and entropy) of a causal LM without its full `[B,T,V]` logits.

For hidden states h_t ∈ R^D, unembedding W ∈ R^{D×V}, temperature τ and targets y_t:

    z_t = h_t·W / τ                          (float32 logits, one position)
    log p(y_t) = z_t[y_t] − logsumexp(z_t)
    H_t = logsumexp(z_t) − Σ_v softmax(z_t)_v · z_t,v

`chunked_logprobs` computes these one sequence chunk of C positions at a time (`lax.scan` over
⌈T/C⌉ chunks, T padded to a multiple of C and the padding sliced off), each chunk under
`jax.checkpoint`, so neither the forward nor the backward pass holds more than one chunk's logits:
the peak logit memory is ≈ B·C·V float32 values (times a small constant for the softmax and its
cotangent) instead of B·T·V — at V = 151,936, B = 16, T = 640 that is 6.2 GB per `[B,T,V]`
buffer, against 1.2 GB per buffer at C = 128. The backward pass recomputes each chunk's logits
(one extra B·C·D·V matmul per chunk) and accumulates ∂W over chunks.

`full_logprobs` is the same formula on materialised logits (the unchunked path and the oracle
the chunked one is tested against); `lm_logprobs` applies either to a `CausalLM`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from prm_jax.models.heads import lm_logits

# Sequence positions per chunk: B·128·V float32 logits live at once (1.2 GB at B=16, V=151,936).
LOGITS_CHUNK = 128


def entropy_from_logits(logits):
    """H = logsumexp(l) − Σ softmax(l)·l per position (float32)."""
    logits = logits.astype(jnp.float32)
    p = jax.nn.softmax(logits, axis=-1)
    return jax.nn.logsumexp(logits, axis=-1) - (p * logits).sum(-1)


def full_logprobs(logits_BxTxV, targets_BxT, *, temperature: float = 1.0,
                  with_entropy: bool = False):
    """log softmax(l/τ)[y] per position, float32 `[B,T]`, from materialised logits; with
    `with_entropy`, (log-probs, entropy of softmax(l/τ)), both `[B,T]`."""
    logits = logits_BxTxV.astype(jnp.float32) / temperature
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.take_along_axis(logp_all, targets_BxT[..., None], axis=-1)[..., 0]
    return (logp, entropy_from_logits(logits)) if with_entropy else logp


def chunked_logprobs(hidden_BxTxD, unembed_DxV, targets_BxT, *, temperature: float = 1.0,
                     chunk: int = LOGITS_CHUNK, with_entropy: bool = False):
    """`full_logprobs(hidden @ unembed, targets)` computed C = `chunk` positions at a time.

    The matmul is `heads.lm_logits` (inputs' dtype, float32 accumulation), as in `CausalLM`.
    Values and gradients (w.r.t. hidden and unembedding) equal the full-logits path up to float32
    rounding; peak logit memory is ≈ B·C·V floats (module docstring).
    """
    b, t, d = hidden_BxTxD.shape
    c = max(1, min(chunk, t))
    n = math.ceil(t / c)
    pad = n * c - t
    hidden = jnp.pad(hidden_BxTxD, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets_BxT, ((0, 0), (0, pad)))
    hidden_NxBxCxD = hidden.reshape(b, n, c, d).transpose(1, 0, 2, 3)
    targets_NxBxC = targets.reshape(b, n, c).transpose(1, 0, 2)

    @jax.checkpoint
    def one_chunk(unembed, h_BxCxD, y_BxC):
        logits = lm_logits(h_BxCxD, unembed)
        out = full_logprobs(logits, y_BxC, temperature=temperature, with_entropy=with_entropy)
        return out if with_entropy else (out,)

    def body(_, xs):
        return None, one_chunk(unembed_DxV, *xs)

    _, outs = jax.lax.scan(body, None, (hidden_NxBxCxD, targets_NxBxC))
    outs = tuple(o.transpose(1, 0, 2).reshape(b, n * c)[:, :t] for o in outs)
    return outs if with_entropy else outs[0]


def lm_logprobs(model, tokens_BxL, mask_BxL, *, start: int, stop: int,
                temperature: float = 1.0, chunk: int | None = LOGITS_CHUNK,
                with_entropy: bool = False):
    """log π(x_{t+1} | x_≤t) of a `CausalLM` at positions t = start..stop−1, float32
    `[B, stop − start]` (and the entropy there with `with_entropy`).

    `chunk` > 0: the backbone's hidden states at those positions go through `chunked_logprobs`;
    0 or None: the model's full logits go through `full_logprobs`.
    """
    targets = tokens_BxL[:, start + 1:stop + 1]
    if not chunk:
        logits = model(tokens_BxL, mask_BxT=mask_BxL)[0][:, start:stop]
        return full_logprobs(logits, targets, temperature=temperature, with_entropy=with_entropy)
    hidden, _ = model.backbone(tokens_BxL, mask_BxT=mask_BxL)
    return chunked_logprobs(hidden[:, start:stop], model.compute_unembedding_DxV(), targets,
                            temperature=temperature, chunk=chunk, with_entropy=with_entropy)


def token_logprobs(hidden_BxTxD, unembed_DxV, tokens_BxT, *, chunk: int = LOGITS_CHUNK):
    """log p(x_s | x_<s) at every position s, float32 `[B,T]` (0 at s = 0), from the hidden
    states h_{s−1} through `chunked_logprobs`."""
    logp = chunked_logprobs(hidden_BxTxD[:, :-1], unembed_DxV, tokens_BxT[:, 1:],
                            chunk=chunk)
    return jnp.pad(logp, ((0, 0), (1, 0)))


def running_min_logprob(hidden_BxTxD, unembed_DxV, tokens_BxT, mask_BxT, start_B, *,
                        chunk: int = LOGITS_CHUNK):
    """m_t = min over real tokens s with start ≤ s ≤ t of log p(x_s | x_<s), float32 `[B,T]`;
    0 where there is no such s (before the response starts). `start_B`: each row's first
    response position."""
    logp = token_logprobs(hidden_BxTxD, unembed_DxV, tokens_BxT, chunk=chunk)
    positions = jnp.arange(tokens_BxT.shape[1])[None, :]
    valid = positions >= jnp.asarray(start_B, jnp.int32)[:, None]
    if mask_BxT is not None:
        valid = valid & mask_BxT.astype(bool)
    return jax.lax.cummin(jnp.where(valid, logp, 0.0), axis=1)
