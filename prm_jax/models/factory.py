"""The configured model from a `RunConfig`: one place that decides its shape and checks it.

With `init_from` the shape comes from the checkpoint's `config.json` (and its EOS ids from
`generation_config.json` too); otherwise from `config.model`, where vocab_size 0 means the
tokenizer's size. `check_model` validates shape, tokenizer and sharding without allocating
parameters, so a bad value is reported before any work starts.
"""

from __future__ import annotations

import jax
from flax import nnx

from prm_jax import config_utils, sharding
from prm_jax.models.config import DecoderConfig
from prm_jax.models.heads import build_model
from prm_jax.models.hf import check_tokenizer_matches, hf_decoder_config, load_pretrained


# Keys of `config.model` that choose numerics and memory, not shape: they apply to every model a
# run loads — its `init_from` checkpoint and each stage's saved policy, PRM and critic.
RUNTIME_OPTIONS = {"dtype": "float32", "param_dtype": "float32", "remat": False}


def runtime_options(config) -> dict:
    """dtype, param_dtype and remat of the run (`config.model`, defaults otherwise)."""
    return {key: config.model.get(key, default) for key, default in RUNTIME_OPTIONS.items()}


def load_run_model(config, path: str, **kwargs):
    """A checkpoint this run reads or wrote (policy, PRM, critic), with the run's dtypes and remat."""
    return load_pretrained(path, **runtime_options(config), **kwargs)


def decoder_config(config, tokenizer) -> DecoderConfig:
    """The model's DecoderConfig: from `config.init_from` if set, else from `config.model`."""
    if config.init_from:
        return hf_decoder_config(config.init_from, **runtime_options(config))
    values = dict(config.model)
    if values.get("vocab_size", 0) == 0:
        values["vocab_size"] = len(tokenizer)
    values.setdefault("eos_token_id", tokenizer.eos_token_id)
    values.setdefault("pad_token_id", tokenizer.pad_token_id)
    return config_utils.to_dataclass(DecoderConfig, values, where="config.model")


def check_model(config, tokenizer, mesh: jax.sharding.Mesh) -> DecoderConfig:
    """Shape, tokenizer/model agreement and parameter sharding, checked on abstract shapes."""
    model_config = decoder_config(config, tokenizer)
    check_tokenizer_matches(tokenizer, model_config)
    abstract = nnx.eval_shape(lambda: build_model(model_config, head="lm", seed=0))
    sharding.state_shardings(nnx.state(abstract), mesh)
    return model_config


def model_from_config(config, tokenizer, *, head: str = "lm", mesh=None):
    """Loads `config.init_from` (a HF checkpoint) or builds a random model from `config.model`."""
    if config.init_from:
        model = load_run_model(config, config.init_from, head=head, mesh=mesh, seed=config.seed)
    else:
        model = build_model(decoder_config(config, tokenizer), head=head, seed=config.seed)
    check_tokenizer_matches(tokenizer, model.config)
    return model
