"""Incremental decoding through the KV cache reproduces the full forward pass."""

import jax
import numpy as np
import pytest
from flax import nnx

from prm_jax.models import DecoderConfig, KVCache, build_model

CONFIG = DecoderConfig(model_type="llama", vocab_size=50, hidden_size=32, intermediate_size=48,
                       num_layers=2, num_heads=4, num_kv_heads=2, rope_theta=1000.0)


def _left_padded(lengths, total, seed=0):
    rng = np.random.default_rng(seed)
    tokens = np.zeros((len(lengths), total), np.int32)
    mask = np.zeros((len(lengths), total), bool)
    for i, n in enumerate(lengths):
        tokens[i, total - n:] = rng.integers(1, 50, n)
        mask[i, total - n:] = True
    return tokens, mask


@pytest.mark.parametrize("head", ["lm", "scalar"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_cached_decoding_equals_full_forward(head, chunk):
    model = build_model(CONFIG, head=head, seed=0)
    prompt, prompt_mask = _left_padded([6, 3, 1], 6)
    rng = np.random.default_rng(1)
    new = rng.integers(1, 50, (3, 6)).astype(np.int32)
    full_tokens = np.concatenate([prompt, new], axis=1)
    full_mask = np.concatenate([prompt_mask, np.ones_like(new, bool)], axis=1)
    expected, _ = model(full_tokens, mask_BxT=full_mask)

    @nnx.jit
    def step(model, tokens, mask, cache):
        return model(tokens, mask_BxT=mask, cache=cache)

    cache = KVCache.init(CONFIG, batch=3, max_len=16)
    out, cache = step(model, prompt, prompt_mask, cache)
    pieces = [out]
    for start in range(0, new.shape[1], chunk):
        piece = new[:, start:start + chunk]
        out, cache = step(model, piece, np.ones_like(piece, bool), cache)
        pieces.append(out)
    got = np.concatenate([np.asarray(p) for p in pieces], axis=1)
    np.testing.assert_allclose(got[full_mask], np.asarray(expected)[full_mask], atol=1e-5)
    assert int(cache.length) == 12
    np.testing.assert_array_equal(np.asarray(cache.num_valid()), [12, 9, 7])


def test_cache_too_small_is_an_error():
    model = build_model(CONFIG)
    cache = KVCache.init(CONFIG, batch=1, max_len=4)
    with pytest.raises(ValueError, match="do not fit"):
        model(np.ones((1, 5), np.int32), cache=cache)


def test_model_is_causal():
    """d logits[t] / d embedding[s] == 0 for s > t."""
    model = build_model(CONFIG)
    tokens = np.arange(1, 9, dtype=np.int32)[None]
    graphdef, params = nnx.split(model, nnx.Param)

    def out_at(p, t):  # tokens are distinct, so embedding row = position
        return nnx.merge(graphdef, p)(tokens)[0][0, t].sum()

    grad = jax.grad(out_at)(params, 3)["backbone"]["embed"][...]
    later = np.asarray(grad)[tokens[0, 4:]]
    earlier = np.asarray(grad)[tokens[0, :4]]
    assert np.abs(later).max() == 0.0 and np.abs(earlier).max() > 0.0


@pytest.mark.parametrize("cache_dtype", [None, "bfloat16"])
def test_a_fresh_cache_prefill_equals_attending_to_the_empty_cache(cache_dtype):
    """`fresh_cache=True` (the prompt attends to itself only, not to the cache's slots) gives
    the hidden states and the cache that attending to the whole empty cache gives — also with
    a lower-precision cache, whose rounding the prompt then sees too — and decoding from
    either cache continues identically. It never reads the cache: a cache full of other
    valid entries gives the same result. It needs a cache."""
    import jax.numpy as jnp

    dtype = jnp.dtype(cache_dtype) if cache_dtype else None
    model = build_model(CONFIG, seed=0)
    prompt, prompt_mask = _left_padded([6, 3, 1], 6, seed=2)
    empty = KVCache.init(CONFIG, batch=3, max_len=16, dtype=dtype)
    want, want_cache = model.backbone(prompt, mask_BxT=prompt_mask, cache=empty)
    got, got_cache = model.backbone(prompt, mask_BxT=prompt_mask, cache=empty, fresh_cache=True)
    rng = np.random.default_rng(5)
    used = empty.replace(
        keys=tuple(jnp.asarray(rng.normal(size=k.shape), k.dtype) for k in empty.keys),
        values=tuple(jnp.asarray(rng.normal(size=v.shape), v.dtype) for v in empty.values),
        valid_BxS=jnp.ones_like(empty.valid_BxS), length=jnp.int32(9))
    reused, reused_cache = model.backbone(prompt, mask_BxT=prompt_mask, cache=used, fresh_cache=True)
    for other in (got, reused):
        np.testing.assert_allclose(np.asarray(other)[prompt_mask], np.asarray(want)[prompt_mask],
                                   atol=1e-6)
    valid = np.asarray(want_cache.valid_BxS)
    for cache in (got_cache, reused_cache):
        np.testing.assert_array_equal(np.asarray(cache.valid_BxS), valid)
        assert int(cache.length) == int(want_cache.length) == 6
        for a, b in zip(cache.keys + cache.values, want_cache.keys + want_cache.values):
            # [B,K,S,H]: compare the valid slots (a pad slot's entry is never attended to).
            np.testing.assert_allclose(np.asarray(a, np.float32).transpose(0, 2, 1, 3)[valid],
                                       np.asarray(b, np.float32).transpose(0, 2, 1, 3)[valid],
                                       atol=1e-6)
    step = np.array([[7], [8], [9]], np.int32)
    after_got, _ = model.backbone(step, cache=got_cache)
    after_want, _ = model.backbone(step, cache=want_cache)
    np.testing.assert_allclose(np.asarray(after_got), np.asarray(after_want), atol=1e-6)
    with pytest.raises(ValueError, match="fresh_cache needs a cache"):
        model.backbone(prompt, fresh_cache=True)
