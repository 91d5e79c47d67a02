"""The decoder family (Llama / Qwen2) in four roles: policy, reference, PRM and critic."""

from prm_jax.models.config import ConfigError, DecoderConfig
from prm_jax.models.heads import CausalLM, ScalarHeadModel, build_model, count_params
from prm_jax.models.hf import CheckpointError, load_pretrained, load_tokenizer, save_pretrained
from prm_jax.models.kv_cache import KVCache

__all__ = [
    "CausalLM", "CheckpointError", "ConfigError", "DecoderConfig", "KVCache", "ScalarHeadModel",
    "build_model", "count_params", "load_pretrained", "load_tokenizer", "save_pretrained",
]
