"""Shapes of real model families (for benchmarks and `jax.eval_shape` checks; no weights)."""

from __future__ import annotations

from prm_jax.models.config import DecoderConfig

PRESETS: dict[str, dict] = {
    "tiny": dict(model_type="llama", vocab_size=1024, hidden_size=128, intermediate_size=384,
                 num_layers=2, num_heads=4, num_kv_heads=2, tie_word_embeddings=True),
    "small": dict(model_type="qwen2", vocab_size=8192, hidden_size=512, intermediate_size=1536,
                  num_layers=8, num_heads=8, num_kv_heads=2, qkv_bias=True,
                  tie_word_embeddings=True),
    "qwen2.5-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896,
                         intermediate_size=4864, num_layers=24, num_heads=14, num_kv_heads=2,
                         rope_theta=1e6, tie_word_embeddings=True, qkv_bias=True,
                         max_position_embeddings=32768),
    "qwen2.5-1.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=1536,
                         intermediate_size=8960, num_layers=28, num_heads=12, num_kv_heads=2,
                         rope_theta=1e6, tie_word_embeddings=True, qkv_bias=True,
                         max_position_embeddings=32768),
}


def preset(name: str, **overrides) -> DecoderConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return DecoderConfig(**dict(PRESETS[name], **overrides))
