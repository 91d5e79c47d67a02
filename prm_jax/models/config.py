"""Typed configuration of the decoder family (Llama / Qwen2) and its mapping to HF `config.json`.

`DecoderConfig` is the one description of a model's shape used by every role (policy, reference,
PRM, critic). It converts to and from the Hugging Face `config.json` dictionaries of
`LlamaForCausalLM` and `Qwen2ForCausalLM` (transformers 4.x `rope_theta`/`rope_scaling` keys and
transformers 5.x `rope_parameters` are both read).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

# model_type -> (causal-LM architecture, token-classification architecture).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("LlamaForCausalLM", "LlamaForTokenClassification"),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2ForTokenClassification"),
}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecoderConfig:
    """Shape and numerics of a Llama/Qwen2-family decoder."""

    # "llama" or "qwen2": decides bias layout and the HF architecture name on export.
    model_type: str = "llama"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    # Defaults to hidden_size // num_heads when None.
    head_dim: int | None = None
    rope_theta: float = 10000.0
    # HF rope scaling dict ({"rope_type": "linear"|"llama3", ...}) or None.
    rope_scaling: Mapping[str, Any] | None = None
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    # Bias on q/k/v projections (Qwen2: always; Llama: `attention_bias`).
    qkv_bias: bool = False
    # Bias on the output projection (Llama `attention_bias` only).
    o_bias: bool = False
    max_position_embeddings: int = 2048
    bos_token_id: int | None = None
    # One id, or several (a tuple; instruct checkpoints stop on e.g. <|im_end|> and <|endoftext|>).
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None
    # Dtype of matmuls/activations; attention softmax and norms always run in float32.
    dtype: str = "float32"
    # Dtype of the stored parameters.
    param_dtype: str = "float32"
    # Recompute each block's activations in the backward pass (jax.checkpoint per layer): a
    # training step then holds one block's activations at a time instead of every layer's.
    # Changes memory and time, never results; not part of the exported config.json.
    remat: bool = False

    def __post_init__(self):
        if isinstance(self.eos_token_id, list):  # from JSON; tuples keep the config hashable
            object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))
        if self.model_type not in ARCHITECTURES:
            raise ConfigError(
                f"model_type={self.model_type!r} is not supported; expected one of "
                f"{sorted(ARCHITECTURES)}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                     "num_kv_heads", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads="
                f"{self.num_kv_heads} (grouped-query attention)")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}; "
                "set head_dim explicitly")
        if self.head_dim is not None and (self.head_dim <= 0 or self.head_dim % 2):
            raise ConfigError(f"head_dim must be a positive even integer, got {self.head_dim!r}")
        if self.rope_theta <= 0:
            raise ConfigError(f"rope_theta must be positive, got {self.rope_theta!r}")
        if self.rope_scaling is not None:
            rope_type = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if rope_type not in SUPPORTED_ROPE_TYPES:
                raise ConfigError(
                    f"rope scaling type {rope_type!r} is not supported; expected one of "
                    f"{SUPPORTED_ROPE_TYPES}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} is not supported; expected one of "
                    f"{sorted(_DTYPES)}")

    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads

    @property
    def eos_ids(self) -> tuple[int, ...]:
        """Every end-of-sequence id (config.json and generation_config.json may list several)."""
        eos = self.eos_token_id
        if eos is None:
            return ()
        return (eos,) if isinstance(eos, int) else tuple(eos)

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def weight_dtype(self):
        return _DTYPES[self.param_dtype]

    def replace(self, **changes) -> "DecoderConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- HF config.json interop
    @classmethod
    def from_hf_dict(cls, hf: Mapping[str, Any], **overrides) -> "DecoderConfig":
        """Builds a config from a HF `config.json` dict; unsupported features are clear errors."""
        model_type = hf.get("model_type")
        if model_type not in ARCHITECTURES:
            raise ConfigError(
                f"config.json has model_type={model_type!r}; supported: {sorted(ARCHITECTURES)} "
                f"(architectures {[a for pair in ARCHITECTURES.values() for a in pair]})")
        if hf.get("hidden_act", "silu") != "silu":
            raise ConfigError(f"hidden_act={hf['hidden_act']!r} is not supported; expected 'silu'")
        if hf.get("mlp_bias", False):
            raise ConfigError("mlp_bias=True is not supported")
        if model_type == "qwen2" and hf.get("use_sliding_window", False):
            raise ConfigError("Qwen2 use_sliding_window=True is not supported")
        rope = dict(hf.get("rope_parameters") or {})
        rope_theta = float(hf.get("rope_theta", rope.get("rope_theta", 10000.0)))
        scaling = hf.get("rope_scaling") or rope
        rope_type = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
        rope_scaling = None
        if rope_type != "default":
            rope_scaling = {k: v for k, v in scaling.items() if k not in ("rope_theta", "type")}
            rope_scaling["rope_type"] = rope_type
        attention_bias = bool(hf.get("attention_bias", False))
        fields = dict(
            model_type=model_type,
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            head_dim=hf.get("head_dim"),
            rope_theta=rope_theta,
            rope_scaling=rope_scaling,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=True if model_type == "qwen2" else attention_bias,
            o_bias=False if model_type == "qwen2" else attention_bias,
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=hf.get("eos_token_id"),
            pad_token_id=hf.get("pad_token_id"),
        )
        fields.update(overrides)
        return cls(**fields)

    def to_hf_dict(self, *, scalar_head: bool = False) -> dict[str, Any]:
        """The HF `config.json` dict that `transformers.AutoConfig` reads back to this shape."""
        if self.model_type == "qwen2" and (not self.qkv_bias or self.o_bias):
            raise ConfigError("Qwen2 checkpoints require qkv_bias=True and o_bias=False")
        if self.model_type == "llama" and self.qkv_bias != self.o_bias:
            raise ConfigError("Llama checkpoints require qkv_bias == o_bias (attention_bias)")
        causal, token_cls = ARCHITECTURES[self.model_type]
        rope_parameters = {"rope_theta": self.rope_theta, "rope_type": "default"}
        if self.rope_scaling is not None:
            rope_parameters.update(self.rope_scaling)
        out = {
            "architectures": [token_cls if scalar_head else causal],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.dim_per_head,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": dict(self.rope_scaling) if self.rope_scaling else None,
            "rope_parameters": rope_parameters,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.param_dtype,
            "dtype": self.param_dtype,
        }
        if self.model_type == "llama":
            out["attention_bias"] = self.qkv_bias
            out["mlp_bias"] = False
        else:
            out["use_sliding_window"] = False
        if scalar_head:
            out["num_labels"] = 1
            out["id2label"] = {"0": "LABEL_0"}
            out["label2id"] = {"LABEL_0": 0}
        return out
