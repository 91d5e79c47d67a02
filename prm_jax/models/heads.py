"""The four roles on one backbone: an LM head (policy, reference) and a scalar head (PRM, critic).

Both classes own a `Decoder` under `.backbone`; a scalar-head model can be built from an
existing backbone (e.g. the PRM from the SFT policy, or the critic from the PRM), which copies
the weights so the two models never alias.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from prm_jax.models.config import DecoderConfig
from prm_jax.models.kv_cache import KVCache
from prm_jax.models.transformer import Decoder, _param


def lm_logits(hidden_xD: jax.Array, unembedding_DxV: jax.Array) -> jax.Array:
    """The one LM-head projection: h·U with float32 accumulation and output, `[..., V]`."""
    return jnp.einsum("...d,dv->...v", hidden_xD, unembedding_DxV,
                      preferred_element_type=jnp.float32)


class _Unembedding:
    """The LM head's weights of a model with `.config` and `.backbone`: the tied embedding, or
    an `lm_head` parameter the model owns (`_add_lm_head`). Shared by `CausalLM` and a PRM
    with a likelihood term."""

    def _add_lm_head(self, config: DecoderConfig, rngs: nnx.Rngs) -> None:
        if not config.tie_word_embeddings:
            self.lm_head = _param(rngs, (config.hidden_size, config.vocab_size), ("embed", "vocab"),
                                  config)

    def unembedding_DxV(self) -> jax.Array:
        if self.config.tie_word_embeddings:
            return self.backbone.embed[...].T
        return self.lm_head[...]

    def compute_unembedding_DxV(self) -> jax.Array:
        """The unembedding in compute dtype: what `lm_logits` multiplies hidden states by."""
        return self.unembedding_DxV().astype(self.config.compute_dtype)


class CausalLM(_Unembedding, nnx.Module):
    """Decoder + LM head. `__call__` returns float32 logits `[B,T,V]` and the updated cache."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.backbone = Decoder(config, rngs=rngs)
        self._add_lm_head(config, rngs)

    def __call__(self, tokens_BxT, *, mask_BxT=None, positions_BxT=None,
                 cache: KVCache | None = None):
        hidden_BxTxD, cache = self.backbone(
            tokens_BxT, mask_BxT=mask_BxT, positions_BxT=positions_BxT, cache=cache)
        return self.logits_from_hidden(hidden_BxTxD), cache

    def logits_from_hidden(self, hidden_BxTxD: jax.Array) -> jax.Array:
        """float32 logits of hidden states `[..., D]` (the sampler applies it to the last
        position only)."""
        return lm_logits(hidden_BxTxD, self.compute_unembedding_DxV())


def init_score_head(config: DecoderConfig, key) -> tuple[jax.Array, jax.Array]:
    """Fresh scalar head: w ~ N(0, 0.02²) `[D,1]`, b = 0 `[1]`. `key` is a PRNG key or an int seed."""
    if isinstance(key, int):
        key = jax.random.key(key)
    return 0.02 * jax.random.normal(key, (config.hidden_size, 1), jnp.float32), jnp.zeros((1,), jnp.float32)


class ScalarHeadModel(_Unembedding, nnx.Module):
    """Decoder + linear scalar head: one float32 value per token, `[B,T]`.

    value_t = h_t · w + b. Exports as HF `*ForTokenClassification` with `num_labels=1`.

    With `likelihood_clip` c > 0 (the PRM's *likelihood term*) the model also reads its own
    language model (the backbone's unembedding: the tied embedding, else an `lm_head` it keeps):

        value_t = h_t · w + b + a · max(m_t, −c) / c,
        m_t = min_{s0 ≤ s ≤ t} log p(x_s | x_<s)        (0 for t < s0),

    the least likely response token so far, s0 = `response_start_B` (the first response
    token's position; required with the term, ignored without it). A wrong constant or operation is a token the policy-initialised
    backbone finds unlikely, which the scalar head at the line's last token cannot read from
    one hidden state; m_t is monotone, so every line after an unlikely one scores lower too
    (the prefix semantics of PRM labels). `a` is the trained `score_likelihood_weight`.
    """

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs, backbone: Decoder | None = None,
                 likelihood_clip: float = 0.0, likelihood_weight: float = 1.0):
        self.config = config
        if backbone is not None:
            if backbone.config != config:
                raise ValueError("backbone was built with a different DecoderConfig")
            self.backbone = nnx.clone(backbone)
        else:
            self.backbone = Decoder(config, rngs=rngs)
        w, b = init_score_head(config, rngs.params())
        self.score_w = nnx.Param(w.astype(config.weight_dtype), logical_axes=("embed", "score"))
        self.score_b = nnx.Param(b.astype(config.weight_dtype), logical_axes=("score",))
        if likelihood_clip < 0:
            raise ValueError(f"likelihood_clip={likelihood_clip} is negative")
        self.likelihood_clip = float(likelihood_clip)
        if self.likelihood_clip:
            self.score_likelihood_weight = nnx.Param(
                jnp.full((1,), likelihood_weight, config.weight_dtype), logical_axes=("score",))
            self._add_lm_head(config, rngs)

    @classmethod
    def from_backbone(cls, model: "CausalLM | ScalarHeadModel", *, rngs: nnx.Rngs,
                      copy_head: bool = True, likelihood_clip: float = 0.0) -> "ScalarHeadModel":
        """A scalar-head model initialised from `model`'s backbone (and its linear head, if
        scalar). With `likelihood_clip` the LM head comes from `model` too (a `CausalLM`, or a
        scalar-head model with a likelihood term); without it a likelihood term is dropped."""
        out = cls(model.config, rngs=rngs, backbone=model.backbone, likelihood_clip=likelihood_clip)
        if copy_head and isinstance(model, ScalarHeadModel):
            out.score_w[...] = model.score_w[...]
            out.score_b[...] = model.score_b[...]
            if likelihood_clip and model.likelihood_clip:
                out.score_likelihood_weight[...] = model.score_likelihood_weight[...]
        if likelihood_clip and not model.config.tie_word_embeddings:
            if not hasattr(model, "lm_head"):
                raise ValueError("a likelihood term needs the source model's LM head")
            out.lm_head[...] = model.lm_head[...]
        return out

    def __call__(self, tokens_BxT, *, mask_BxT=None, positions_BxT=None,
                 cache: KVCache | None = None, response_start_B=None):
        hidden_BxTxD, cache = self.backbone(
            tokens_BxT, mask_BxT=mask_BxT, positions_BxT=positions_BxT, cache=cache)
        values_BxTx1 = jnp.einsum(
            "btd,do->bto", hidden_BxTxD, self.score_w[...].astype(self.config.compute_dtype),
            preferred_element_type=jnp.float32)
        values_BxT = values_BxTx1[..., 0] + self.score_b[...].astype(jnp.float32)[0]
        if self.likelihood_clip:
            if response_start_B is None:
                raise ValueError("a PRM with a likelihood term needs response_start_B")
            from prm_jax.models.logprobs import running_min_logprob

            m_BxT = running_min_logprob(hidden_BxTxD, self.compute_unembedding_DxV(), tokens_BxT,
                                        mask_BxT, response_start_B)
            feature = jnp.maximum(m_BxT, -self.likelihood_clip) / self.likelihood_clip
            values_BxT = values_BxT + self.score_likelihood_weight[...].astype(jnp.float32)[0] * feature
        return values_BxT, cache


def build_model(config: DecoderConfig, *, head: str = "lm", seed: int = 0,
                likelihood_clip: float = 0.0):
    """Constructs a randomly initialised model: head "lm" → CausalLM, "scalar" → ScalarHeadModel
    (with a likelihood term when `likelihood_clip` > 0)."""
    rngs = nnx.Rngs(params=seed)
    if head == "lm":
        return CausalLM(config, rngs=rngs)
    if head == "scalar":
        return ScalarHeadModel(config, rngs=rngs, likelihood_clip=likelihood_clip)
    raise ValueError(f"head={head!r} is not one of 'lm', 'scalar'")


def count_params(model: nnx.Module) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
