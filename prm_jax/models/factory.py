"""Builds the configured model and tokenizer from the top-level ConfigDict (one place for it)."""

from __future__ import annotations

import ml_collections

from prm_jax import config_utils
from prm_jax.models.config import DecoderConfig
from prm_jax.models.heads import build_model
from prm_jax.models.hf import check_tokenizer_matches, load_pretrained


def decoder_config(config: ml_collections.ConfigDict, tokenizer) -> DecoderConfig:
    """`config.model` as a typed DecoderConfig; vocab_size 0 means the tokenizer's size."""
    values = config.model.to_dict()
    if values.get("vocab_size", 0) == 0:
        values["vocab_size"] = len(tokenizer)
    values.setdefault("eos_token_id", tokenizer.eos_token_id)
    values.setdefault("pad_token_id", tokenizer.pad_token_id)
    return config_utils.to_dataclass(DecoderConfig, values, where="config.model")


def model_from_config(config: ml_collections.ConfigDict, tokenizer, *, head: str = "lm", mesh=None):
    """Loads `config.init_from` (a HF checkpoint) or builds a random model from `config.model`."""
    if config.init_from:
        model = load_pretrained(config.init_from, head=head, dtype=config.model.dtype,
                                param_dtype=config.model.param_dtype, mesh=mesh, seed=config.seed)
    else:
        model = build_model(decoder_config(config, tokenizer), head=head, seed=config.seed)
    check_tokenizer_matches(tokenizer, model.config)
    return model
