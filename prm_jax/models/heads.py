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


class CausalLM(nnx.Module):
    """Decoder + LM head. `__call__` returns float32 logits `[B,T,V]` and the updated cache."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.backbone = Decoder(config, rngs=rngs)
        if not config.tie_word_embeddings:
            self.lm_head = _param(rngs, (config.hidden_size, config.vocab_size), ("embed", "vocab"),
                                  config)

    def unembedding_DxV(self) -> jax.Array:
        if self.config.tie_word_embeddings:
            return self.backbone.embed[...].T
        return self.lm_head[...]

    def __call__(self, tokens_BxT, *, mask_BxT=None, positions_BxT=None,
                 cache: KVCache | None = None):
        hidden_BxTxD, cache = self.backbone(
            tokens_BxT, mask_BxT=mask_BxT, positions_BxT=positions_BxT, cache=cache)
        return self.logits_from_hidden(hidden_BxTxD), cache

    def compute_unembedding_DxV(self) -> jax.Array:
        """The unembedding in compute dtype: what `lm_logits` multiplies hidden states by."""
        return self.unembedding_DxV().astype(self.config.compute_dtype)

    def logits_from_hidden(self, hidden_BxTxD: jax.Array) -> jax.Array:
        """float32 logits of hidden states `[..., D]` (the sampler applies it to the last
        position only)."""
        return lm_logits(hidden_BxTxD, self.compute_unembedding_DxV())


def init_score_head(config: DecoderConfig, key) -> tuple[jax.Array, jax.Array]:
    """Fresh scalar head: w ~ N(0, 0.02²) `[D,1]`, b = 0 `[1]`. `key` is a PRNG key or an int seed."""
    if isinstance(key, int):
        key = jax.random.key(key)
    return 0.02 * jax.random.normal(key, (config.hidden_size, 1), jnp.float32), jnp.zeros((1,), jnp.float32)


class ScalarHeadModel(nnx.Module):
    """Decoder + linear scalar head: one float32 value per token, `[B,T]`.

    value_t = h_t · w + b. Exports as HF `*ForTokenClassification` with `num_labels=1`.
    """

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs, backbone: Decoder | None = None):
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

    @classmethod
    def from_backbone(cls, model: "CausalLM | ScalarHeadModel", *, rngs: nnx.Rngs,
                      copy_head: bool = True) -> "ScalarHeadModel":
        """A scalar-head model initialised from `model`'s backbone (and its head, if scalar)."""
        out = cls(model.config, rngs=rngs, backbone=model.backbone)
        if copy_head and isinstance(model, ScalarHeadModel):
            out.score_w[...] = model.score_w[...]
            out.score_b[...] = model.score_b[...]
        return out

    def __call__(self, tokens_BxT, *, mask_BxT=None, positions_BxT=None,
                 cache: KVCache | None = None):
        hidden_BxTxD, cache = self.backbone(
            tokens_BxT, mask_BxT=mask_BxT, positions_BxT=positions_BxT, cache=cache)
        values_BxTx1 = jnp.einsum(
            "btd,do->bto", hidden_BxTxD, self.score_w[...].astype(self.config.compute_dtype),
            preferred_element_type=jnp.float32)
        return values_BxTx1[..., 0] + self.score_b[...].astype(jnp.float32)[0], cache


def build_model(config: DecoderConfig, *, head: str = "lm", seed: int = 0):
    """Constructs a randomly initialised model: head "lm" → CausalLM, "scalar" → ScalarHeadModel."""
    rngs = nnx.Rngs(params=seed)
    if head == "lm":
        return CausalLM(config, rngs=rngs)
    if head == "scalar":
        return ScalarHeadModel(config, rngs=rngs)
    raise ValueError(f"head={head!r} is not one of 'lm', 'scalar'")


def count_params(model: nnx.Module) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
