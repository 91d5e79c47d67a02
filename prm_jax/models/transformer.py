"""Llama / Qwen2-family decoder in `flax.nnx`.

Shape letters: B batch, T new tokens, S attended slots (cache or T), D model width, N query heads,
K kv heads, G = N / K query heads per kv head, H head dim, F MLP width, V vocabulary.

Every parameter carries `logical_axes` metadata (`vocab`, `embed`, `mlp`, `heads`, `kv_heads`,
`head_dim`, `norm`, `score`); `prm_jax.sharding` maps them to mesh axes. Weights are stored in
`config.param_dtype` and cast to `config.dtype` for compute; RMSNorm statistics, attention
softmax and output logits/values are float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from prm_jax.models.config import DecoderConfig
from prm_jax.models.kv_cache import KVCache

_MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


def _param(rngs: nnx.Rngs, shape, axes, config: DecoderConfig, init: str = "normal"):
    dtype = config.weight_dtype
    if init == "normal":
        value = 0.02 * jax.random.normal(rngs.params(), shape, jnp.float32)
    elif init == "zeros":
        value = jnp.zeros(shape, jnp.float32)
    elif init == "ones":
        value = jnp.ones(shape, jnp.float32)
    else:
        raise ValueError(f"unknown init {init!r}")
    return nnx.Param(value.astype(dtype), logical_axes=tuple(axes))


# ------------------------------------------------------------------------------------ RoPE
def rope_inverse_frequencies(config: DecoderConfig) -> jax.Array:
    """inv_freq[i] = theta^(-2i/H), then rescaled per `config.rope_scaling` (linear | llama3)."""
    head_dim = config.dim_per_head
    inv_freq = 1.0 / (config.rope_theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    scaling = config.rope_scaling
    if scaling is None:
        return inv_freq
    rope_type = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling["factor"])
    if rope_type == "linear":
        return inv_freq / factor
    # llama3: long wavelengths divided by `factor`, short ones kept, a smooth ramp in between.
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    old_len = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = jnp.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return jnp.where(medium, smoothed, scaled)


def apply_rope(x_BxTxNxH: jax.Array, positions_BxT: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """HF "rotate half" RoPE: x·cos(pθ) + rotate_half(x)·sin(pθ), halves [x1, x2] → [−x2, x1]."""
    angles_BxTxH2 = positions_BxT[..., None].astype(jnp.float32) * inv_freq[None, None, :]
    cos = jnp.cos(angles_BxTxH2)[:, :, None, :]
    sin = jnp.sin(angles_BxTxH2)[:, :, None, :]
    x = x_BxTxNxH.astype(jnp.float32)
    x1, x2 = jnp.split(x, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxNxH.dtype)


# ------------------------------------------------------------------------------------ layers
class RMSNorm(nnx.Module):
    """y = x / sqrt(mean(x²) + eps) · scale, statistics in float32."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.eps = config.rms_norm_eps
        self.scale = _param(rngs, (config.hidden_size,), ("norm",), config, "ones")

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        x = x_BxTxD.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        scale_11D = self.scale[...].astype(jnp.float32)[None, None, :]
        return (scale_11D * x.astype(x_BxTxD.dtype)).astype(x_BxTxD.dtype)


class Attention(nnx.Module):
    """Grouped-query causal self-attention with RoPE and an optional KV cache."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        d, n, k, h = config.hidden_size, config.num_heads, config.num_kv_heads, config.dim_per_head
        self.config = config
        self.q_proj = _param(rngs, (d, n, h), ("embed", "heads", "head_dim"), config)
        self.k_proj = _param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), config)
        self.v_proj = _param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), config)
        self.o_proj = _param(rngs, (n, h, d), ("heads", "head_dim", "embed"), config)
        if config.qkv_bias:
            self.q_bias = _param(rngs, (n, h), ("heads", "head_dim"), config, "zeros")
            self.k_bias = _param(rngs, (k, h), ("kv_heads", "head_dim"), config, "zeros")
            self.v_bias = _param(rngs, (k, h), ("kv_heads", "head_dim"), config, "zeros")
        if config.o_bias:
            self.o_bias = _param(rngs, (d,), ("embed",), config, "zeros")

    def _project(self, x_BxTxD, weight, bias_name):
        dtype = self.config.compute_dtype
        y = jnp.einsum("btd,dnh->btnh", x_BxTxD, weight[...].astype(dtype))
        if self.config.qkv_bias:
            y = y + getattr(self, bias_name)[...].astype(dtype)[None, None]
        return y

    def __call__(self, x_BxTxD, positions_BxT, mask_BxTxS, inv_freq, kv=None, write_at=None,
                 new_only=False):
        """Returns (output `[B,T,D]`, updated (keys, values) when `kv` is given else None).

        `kv` holds this layer's cached `[B,K,S,H]` keys and values; the new tokens' keys and
        values are written at slots `[write_at, write_at + T)` before attending. With
        `new_only` (a cache that held nothing before these tokens) they attend to the new
        tokens' keys and values only (`mask_BxTxS` is then `[B,T,T]`). Keys and values
        are attended in that `[B,K,S,H]` layout (B and K batch dims of both matmuls), so the
        cache is never transposed or copied; the output projection is one `[N·H, D]` matmul.
        """
        cfg = self.config
        q_BxTxNxH = apply_rope(self._project(x_BxTxD, self.q_proj, "q_bias"), positions_BxT, inv_freq)
        k_BxKxTxH = apply_rope(self._project(x_BxTxD, self.k_proj, "k_bias"), positions_BxT,
                               inv_freq).transpose(0, 2, 1, 3)
        v_BxKxTxH = self._project(x_BxTxD, self.v_proj, "v_bias").transpose(0, 2, 1, 3)
        new_kv = None
        if kv is not None:
            cache_k, cache_v = kv
            start = (0, 0, write_at, 0)
            cache_k = jax.lax.dynamic_update_slice(cache_k, k_BxKxTxH.astype(cache_k.dtype), start)
            cache_v = jax.lax.dynamic_update_slice(cache_v, v_BxKxTxH.astype(cache_v.dtype), start)
            new_kv = (cache_k, cache_v)
        if kv is None:
            k_BxKxSxH, v_BxKxSxH = k_BxKxTxH, v_BxKxTxH
        elif new_only:
            # Rounded to the cache's dtype as later steps will read them, so the prefill
            # attends to what attending to the cache would give.
            k_BxKxSxH = k_BxKxTxH.astype(cache_k.dtype).astype(q_BxTxNxH.dtype)
            v_BxKxSxH = v_BxKxTxH.astype(cache_v.dtype).astype(q_BxTxNxH.dtype)
        else:
            k_BxKxSxH, v_BxKxSxH = cache_k.astype(q_BxTxNxH.dtype), cache_v.astype(q_BxTxNxH.dtype)
        b, t, n, h = q_BxTxNxH.shape
        k = cfg.num_kv_heads
        q_BxKxGTxH = q_BxTxNxH.reshape(b, t, k, n // k, h).transpose(0, 2, 3, 1, 4).reshape(
            b, k, (n // k) * t, h)
        logits_BxKxGTxS = jnp.einsum(
            "bkqh,bksh->bkqs", q_BxKxGTxH, k_BxKxSxH, preferred_element_type=jnp.float32)
        logits_BxKxGxTxS = logits_BxKxGTxS.reshape(b, k, n // k, t, -1) * (h ** -0.5)
        logits_BxKxGxTxS = jnp.where(mask_BxTxS[:, None, None], logits_BxKxGxTxS, _MASK_VALUE)
        probs_BxKxGTxS = jax.nn.softmax(logits_BxKxGxTxS, axis=-1).astype(v_BxKxSxH.dtype).reshape(
            b, k, (n // k) * t, -1)
        out_BxKxGTxH = jnp.einsum("bkqs,bksh->bkqh", probs_BxKxGTxS, v_BxKxSxH)
        out_BxTxNH = out_BxKxGTxH.reshape(b, k, n // k, t, h).transpose(0, 3, 1, 2, 4).reshape(
            b, t, n * h)
        o_proj_NHxD = self.o_proj[...].astype(cfg.compute_dtype).reshape(n * h, -1)
        out_BxTxD = jnp.einsum("btf,fd->btd", out_BxTxNH, o_proj_NHxD)
        if cfg.o_bias:
            out_BxTxD = out_BxTxD + self.o_bias[...].astype(cfg.compute_dtype)[None, None]
        return out_BxTxD, new_kv


class MLP(nnx.Module):
    """SwiGLU: down(silu(x·gate) ⊙ (x·up))."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        d, f = config.hidden_size, config.intermediate_size
        self.dtype = config.compute_dtype
        self.gate_proj = _param(rngs, (d, f), ("embed", "mlp"), config)
        self.up_proj = _param(rngs, (d, f), ("embed", "mlp"), config)
        self.down_proj = _param(rngs, (f, d), ("mlp", "embed"), config)

    def __call__(self, x_BxTxD):
        gate = x_BxTxD @ self.gate_proj[...].astype(self.dtype)
        up = x_BxTxD @ self.up_proj[...].astype(self.dtype)
        return (jax.nn.silu(gate) * up) @ self.down_proj[...].astype(self.dtype)


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(·))."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.input_norm = RMSNorm(config, rngs=rngs)
        self.attn = Attention(config, rngs=rngs)
        self.post_attn_norm = RMSNorm(config, rngs=rngs)
        self.mlp = MLP(config, rngs=rngs)

    def __call__(self, x_BxTxD, positions_BxT, mask_BxTxS, inv_freq, kv=None, write_at=None,
                 new_only=False):
        attn_out, new_kv = self.attn(
            self.input_norm(x_BxTxD), positions_BxT, mask_BxTxS, inv_freq, kv, write_at, new_only)
        x_BxTxD = x_BxTxD + attn_out
        x_BxTxD = x_BxTxD + self.mlp(self.post_attn_norm(x_BxTxD))
        return x_BxTxD, new_kv


def _run_block(block, x_BxTxD, positions_BxT, mask_BxTxS, inv_freq, kv, write_at, new_only=False):
    return block(x_BxTxD, positions_BxT, mask_BxTxS, inv_freq, kv, write_at, new_only)


# The same call, its activations recomputed in the backward pass (`DecoderConfig.remat`).
_run_block_remat = nnx.remat(_run_block)


def positions_from_mask(mask_BxT: jax.Array, offset_B: jax.Array | None = None) -> jax.Array:
    """RoPE positions: the count of real tokens before each token (pads get the next position)."""
    positions = jnp.cumsum(mask_BxT.astype(jnp.int32), axis=1) - mask_BxT.astype(jnp.int32)
    if offset_B is not None:
        positions = positions + offset_B[:, None]
    return positions


class Decoder(nnx.Module):
    """Token embedding → blocks → final RMSNorm. Returns hidden states `[B,T,D]`."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed = _param(rngs, (config.vocab_size, config.hidden_size), ("vocab", "embed"), config)
        self.layers = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = RMSNorm(config, rngs=rngs)

    def __call__(self, tokens_BxT, *, mask_BxT=None, positions_BxT=None, cache: KVCache | None = None,
                 fresh_cache: bool = False):
        """Runs the decoder over `tokens_BxT`.

        Args:
          tokens_BxT: int token ids.
          mask_BxT: True for real tokens, False for padding (default: all real).
          positions_BxT: RoPE positions (default: from the mask, continuing after the cache).
          cache: when given, the tokens are appended at slot `cache.length` and attend to every
            valid cached slot before them; the updated cache is returned.
          fresh_cache: the cache holds nothing yet (`KVCache.init`; the caller's promise): the
            tokens are written from slot 0 and attend to each other only — what attending to
            the empty cache computes, without reading its empty slots (a prefill's attention
            then costs T², not T·S).
        Returns:
          (hidden `[B,T,D]` in compute dtype, updated cache or None).
        """
        cfg = self.config
        b, t = tokens_BxT.shape
        if mask_BxT is None:
            mask_BxT = jnp.ones((b, t), bool)
        mask_BxT = mask_BxT.astype(bool)
        if fresh_cache and cache is None:
            raise ValueError("fresh_cache needs a cache")
        if positions_BxT is None:
            positions_BxT = positions_from_mask(
                mask_BxT, cache.num_valid() if cache is not None and not fresh_cache else None)
        inv_freq = rope_inverse_frequencies(cfg)
        if cache is not None and t > cache.max_len:
            raise ValueError(f"{t} new tokens do not fit in a cache of {cache.max_len} slots")
        if cache is None or fresh_cache:
            causal_TxS = jnp.tril(jnp.ones((t, t), bool))
            mask_BxTxS = causal_TxS[None] & mask_BxT[:, None, :]
        if cache is None:
            write_at = None
        elif fresh_cache:
            write_at = jnp.zeros((), jnp.int32)
            valid_BxS = jax.lax.dynamic_update_slice(jnp.zeros_like(cache.valid_BxS), mask_BxT, (0, 0))
        else:
            write_at = cache.length
            slots_S = jnp.arange(cache.max_len)
            valid_BxS = jax.lax.dynamic_update_slice(cache.valid_BxS, mask_BxT, (0, write_at))
            causal_TxS = slots_S[None, :] <= (write_at + jnp.arange(t))[:, None]
            mask_BxTxS = causal_TxS[None] & valid_BxS[:, None, :]
        x_BxTxD = jnp.take(self.embed[...], tokens_BxT, axis=0).astype(cfg.compute_dtype)
        new_keys, new_values = [], []
        run_block = _run_block_remat if (cfg.remat and cache is None) else _run_block
        for i, layer in enumerate(self.layers):
            kv = (cache.keys[i], cache.values[i]) if cache is not None else None
            # fresh_cache only with a cache: the recomputed (remat) path, cache-free, never sees it.
            extra = (fresh_cache,) if cache is not None else ()
            x_BxTxD, new_kv = run_block(layer, x_BxTxD, positions_BxT, mask_BxTxS, inv_freq, kv,
                                        write_at, *extra)
            if new_kv is not None:
                new_keys.append(new_kv[0])
                new_values.append(new_kv[1])
        hidden_BxTxD = self.final_norm(x_BxTxD)
        if cache is None:
            return hidden_BxTxD, None
        new_cache = KVCache(keys=tuple(new_keys), values=tuple(new_values), valid_BxS=valid_BxS,
                            length=write_at + t)
        return hidden_BxTxD, new_cache
