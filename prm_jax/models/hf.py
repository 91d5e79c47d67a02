"""Hugging Face interop: `config.json` + safetensors ⇄ NNX models, tokenizers via AutoTokenizer.

Supported checkpoints: `LlamaForCausalLM`, `Qwen2ForCausalLM` (LM head) and
`LlamaForTokenClassification`, `Qwen2ForTokenClassification` with `num_labels=1` (scalar head:
PRM and critic; a PRM with a likelihood term adds `score.likelihood_weight` — and `lm_head.weight`
when the embeddings are untied — and `prm_likelihood_clip` in config.json, which transformers
ignores: it loads the linear head alone). `tensor_specs` is the single name/layout mapping
between the two worlds:

  HF Linear weight `[out, in]`  →  ours `[in, out]` (q/k/v split into `[D, heads, head_dim]`,
  o_proj into `[heads, head_dim, D]`); embeddings and norms are unchanged.

Loading streams one tensor at a time from disk to its (possibly sharded) device placement, so
host memory never holds a second copy of the model.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prm_jax.models.config import ARCHITECTURES, ConfigError, DecoderConfig
from prm_jax.models.heads import CausalLM, ScalarHeadModel, build_model, init_score_head
from prm_jax.models.safetensors_io import SafetensorsReader, iter_checkpoint_files, write_safetensors

_CAUSAL = {arch: mt for mt, (arch, _) in ARCHITECTURES.items()}
_TOKEN_CLS = {arch: mt for mt, (_, arch) in ARCHITECTURES.items()}
# Non-parameter buffers some exporters include.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class CheckpointError(ValueError):
    """A checkpoint does not match the model: unsupported, missing, extra or mis-shaped tensors."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """How one HF tensor maps onto one NNX parameter."""

    path: tuple  # attribute/index path from the model root to the nnx.Param
    hf_shape: tuple[int, ...]
    to_nnx: Callable[[np.ndarray], np.ndarray]
    to_hf: Callable[[np.ndarray], np.ndarray]


# A scalar head's likelihood term (`ScalarHeadModel`): its clip in config.json, its weight tensor.
LIKELIHOOD_CLIP_KEY = "prm_likelihood_clip"
LIKELIHOOD_WEIGHT = "score.likelihood_weight"


def _identity(x):
    return x


def _linear(out_shape_nnx):
    """HF `[out, in]` ⇄ ours `[in, *out_split]`."""
    def to_nnx(w):
        return w.T.reshape(out_shape_nnx)
    def to_hf(w):
        return w.reshape(w.shape[0], -1).T
    return to_nnx, to_hf


def _out_proj(n, h, d):
    """HF o_proj `[D, N·H]` ⇄ ours `[N, H, D]`."""
    return (lambda w: w.T.reshape(n, h, d)), (lambda w: w.reshape(n * h, d).T)


def tensor_specs(config: DecoderConfig, head: str, *,
                 likelihood: bool = False) -> dict[str, TensorSpec]:
    """HF tensor name → TensorSpec for a model with `head` in {"lm", "scalar"}; `likelihood`:
    a scalar head with a likelihood term (`score.likelihood_weight`, and `lm_head.weight` when
    the embeddings are not tied)."""
    d, f, v = config.hidden_size, config.intermediate_size, config.vocab_size
    n, k, h = config.num_heads, config.num_kv_heads, config.dim_per_head
    specs: dict[str, TensorSpec] = {}

    def add(name, path, hf_shape, conv=(_identity, _identity)):
        specs[name] = TensorSpec(tuple(path), tuple(hf_shape), conv[0], conv[1])

    add("model.embed_tokens.weight", ("backbone", "embed"), (v, d))
    for i in range(config.num_layers):
        hf, ours = f"model.layers.{i}.", ("backbone", "layers", i)
        add(hf + "input_layernorm.weight", ours + ("input_norm", "scale"), (d,))
        add(hf + "post_attention_layernorm.weight", ours + ("post_attn_norm", "scale"), (d,))
        att = ours + ("attn",)
        add(hf + "self_attn.q_proj.weight", att + ("q_proj",), (n * h, d), _linear((d, n, h)))
        add(hf + "self_attn.k_proj.weight", att + ("k_proj",), (k * h, d), _linear((d, k, h)))
        add(hf + "self_attn.v_proj.weight", att + ("v_proj",), (k * h, d), _linear((d, k, h)))
        add(hf + "self_attn.o_proj.weight", att + ("o_proj",), (d, n * h), _out_proj(n, h, d))
        if config.qkv_bias:
            for name, heads in (("q", n), ("k", k), ("v", k)):
                add(hf + f"self_attn.{name}_proj.bias", att + (f"{name}_bias",), (heads * h,),
                    (lambda b, heads=heads: b.reshape(heads, h), lambda b: b.reshape(-1)))
        if config.o_bias:
            add(hf + "self_attn.o_proj.bias", att + ("o_bias",), (d,))
        mlp = ours + ("mlp",)
        add(hf + "mlp.gate_proj.weight", mlp + ("gate_proj",), (f, d), _linear((d, f)))
        add(hf + "mlp.up_proj.weight", mlp + ("up_proj",), (f, d), _linear((d, f)))
        add(hf + "mlp.down_proj.weight", mlp + ("down_proj",), (d, f), _linear((f, d)))
    add("model.norm.weight", ("backbone", "final_norm", "scale"), (d,))
    if head == "lm":
        if not config.tie_word_embeddings:
            add("lm_head.weight", ("lm_head",), (v, d), _linear((d, v)))
    elif head == "scalar":
        add("score.weight", ("score_w",), (1, d), _linear((d, 1)))
        add("score.bias", ("score_b",), (1,))
        if likelihood:
            add(LIKELIHOOD_WEIGHT, ("score_likelihood_weight",), (1,))
            if not config.tie_word_embeddings:
                add("lm_head.weight", ("lm_head",), (v, d), _linear((d, v)))
    else:
        raise ValueError(f"head={head!r} is not one of 'lm', 'scalar'")
    return specs


def _variable(model: nnx.Module, path: tuple) -> nnx.Variable:
    node: Any = model
    for key in path:
        node = node[key] if isinstance(key, int) else getattr(node, key)
    return node


def read_hf_config(path: str) -> dict:
    config_path = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} does not exist (not a Hugging Face checkpoint?)")
    try:
        with open(config_path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{config_path} is not valid JSON: {e}") from e


def checkpoint_head(hf_config: dict) -> str:
    """'lm' or 'scalar' from `architectures`; unsupported architectures are a CheckpointError."""
    archs = hf_config.get("architectures") or []
    supported = sorted(_CAUSAL) + sorted(_TOKEN_CLS)
    if len(archs) != 1 or archs[0] not in supported:
        raise CheckpointError(f"unsupported architecture {archs!r}; supported: {supported}")
    if archs[0] in _TOKEN_CLS:
        if hf_config.get("num_labels", len(hf_config.get("id2label") or {1: 0})) != 1:
            raise CheckpointError(f"{archs[0]} checkpoints must have num_labels=1 (a scalar head)")
        return "scalar"
    return "lm"


def read_generation_config(path: str) -> dict:
    """`generation_config.json` of a checkpoint directory ({} when absent)."""
    gen_path = os.path.join(path, "generation_config.json")
    if not os.path.exists(gen_path):
        return {}
    try:
        with open(gen_path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{gen_path} is not valid JSON: {e}") from e


def _as_ids(value) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def hf_decoder_config(path: str, **overrides) -> DecoderConfig:
    """The DecoderConfig of a checkpoint directory; its EOS ids are those of `config.json` and
    `generation_config.json` together (instruct models stop on several)."""
    hf_config = read_hf_config(path)
    eos = _as_ids(hf_config.get("eos_token_id"))
    eos += [i for i in _as_ids(read_generation_config(path).get("eos_token_id")) if i not in eos]
    overrides.setdefault("eos_token_id", eos[0] if len(eos) == 1 else (tuple(eos) or None))
    return DecoderConfig.from_hf_dict(hf_config, **overrides)


def load_pretrained(path: str, *, head: str | None = None, dtype: str = "float32",
                    param_dtype: str = "float32", remat: bool = False,
                    mesh: jax.sharding.Mesh | None = None, rules=None, seed: int = 0,
                    likelihood_clip: float = 0.0):
    """Loads a HF checkpoint directory into a `CausalLM` or `ScalarHeadModel`.

    Args:
      path: directory with `config.json` and `model.safetensors` or a sharded index.
      head: "lm" or "scalar"; default: the checkpoint's own. Loading a causal-LM checkpoint with
        head="scalar" initialises a fresh scalar head on its backbone (PRM from policy) and ignores
        `lm_head.weight`; the reverse is an error.
      dtype / param_dtype: compute and storage dtypes.
      remat: recompute each block's activations in the backward pass (`DecoderConfig.remat`).
      mesh: if given, every parameter is placed on it per `prm_jax.sharding` rules as it is read.
      likelihood_clip: a fresh scalar head on a causal-LM checkpoint gets a likelihood term with
        this clip (`ScalarHeadModel`; its weight starts at 1, the LM head is the checkpoint's);
        a scalar-head checkpoint brings its own (`prm_likelihood_clip` in config.json).
    Raises:
      CheckpointError naming the offending tensor for missing, unexpected or mis-shaped tensors.
    """
    from prm_jax import sharding as sharding_lib

    hf_config = read_hf_config(path)
    ckpt_head = checkpoint_head(hf_config)
    head = head or ckpt_head
    if ckpt_head == "scalar" and head == "lm":
        raise CheckpointError(f"{path} holds a scalar-head model; it has no LM head to load")
    config = hf_decoder_config(path, dtype=dtype, param_dtype=param_dtype, remat=remat)
    if ckpt_head == "scalar":
        stored = float(hf_config.get(LIKELIHOOD_CLIP_KEY, 0.0))
        if likelihood_clip and likelihood_clip != stored:
            raise CheckpointError(f"{path} has {LIKELIHOOD_CLIP_KEY}={stored}, not {likelihood_clip}")
        likelihood_clip = stored
    elif head == "lm":
        likelihood_clip = 0.0
    model = nnx.eval_shape(lambda: build_model(config, head=head, seed=seed,
                                               likelihood_clip=likelihood_clip))
    expected = tensor_specs(config, head, likelihood=bool(likelihood_clip))
    rules = rules or sharding_lib.LOGICAL_RULES
    target = np.dtype(config.weight_dtype)

    def place(var: nnx.Variable, value: np.ndarray, name: str):
        if mesh is not None:
            sharding = sharding_lib.param_sharding(
                name, value.shape, var.get_metadata()["logical_axes"], mesh, rules)
            var.set_value(jax.device_put(value, sharding))
        else:
            var.set_value(jnp.asarray(value))

    loaded: set[str] = set()
    for file in iter_checkpoint_files(path):
        with SafetensorsReader(file) as reader:
            for name in reader.keys():
                if name.endswith(_IGNORED_SUFFIXES):
                    continue
                if name not in expected:
                    if name == "lm_head.weight" and (config.tie_word_embeddings or head == "scalar"):
                        continue  # tied copy, or an LM head a scalar-head model does not use
                    raise CheckpointError(f"{file}: unexpected tensor {name!r} for {config.model_type} "
                                          f"with head={head!r}")
                if name in loaded:
                    raise CheckpointError(f"{file}: tensor {name!r} appears in more than one file")
                spec = expected[name]
                if reader.shape(name) != spec.hf_shape:
                    raise CheckpointError(f"{file}: tensor {name!r} has shape {reader.shape(name)}, "
                                          f"expected {spec.hf_shape} from config.json")
                value = spec.to_nnx(reader.read(name)).astype(target)
                place(_variable(model, spec.path), np.ascontiguousarray(value), name)
                loaded.add(name)
    missing = [n for n in expected if n not in loaded]
    if head == "scalar" and ckpt_head == "lm":
        for name, value in zip(("score.weight", "score.bias"), init_score_head(config, seed)):
            place(_variable(model, expected[name].path), np.asarray(value, target), name)
            missing.remove(name)
        if likelihood_clip:
            place(_variable(model, expected[LIKELIHOOD_WEIGHT].path), np.ones((1,), target),
                  LIKELIHOOD_WEIGHT)
            missing.remove(LIKELIHOOD_WEIGHT)
    if missing:
        raise CheckpointError(f"{path}: missing tensors {missing[:8]}"
                              f"{' …' if len(missing) > 8 else ''} ({len(missing)} in all)")
    return model


def save_pretrained(model: CausalLM | ScalarHeadModel, path: str, *, tokenizer=None,
                    dtype: str | None = None, max_shard_bytes: int = 4 << 30) -> list[str]:
    """Writes `model` as a HF checkpoint directory that `AutoModelFor*.from_pretrained` loads.

    Tensors stream from the devices one at a time (gathered if sharded). Files over
    `max_shard_bytes` are split with a `model.safetensors.index.json`. `dtype` (default: the
    parameters' dtype) is the stored dtype. A tokenizer, if given, is saved alongside.
    Returns the written safetensors file names.
    """
    head = "scalar" if isinstance(model, ScalarHeadModel) else "lm"
    config = model.config
    store = np.dtype(jnp.dtype(dtype or config.param_dtype))
    clip = getattr(model, "likelihood_clip", 0.0)
    specs = tensor_specs(config, head, likelihood=bool(clip))
    os.makedirs(path, exist_ok=True)
    hf_config = config.to_hf_dict(scalar_head=head == "scalar")
    if clip:
        hf_config[LIKELIHOOD_CLIP_KEY] = clip
    hf_config["torch_dtype"] = hf_config["dtype"] = str(jnp.dtype(store))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)
    generation = {k: getattr(config, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")
                  if getattr(config, k) is not None}
    with open(os.path.join(path, "generation_config.json"), "w") as f:
        json.dump(dict(generation, _from_model_config=True), f, indent=2)

    shards: list[list[tuple[str, tuple, np.dtype]]] = [[]]
    size = 0
    for name, spec in specs.items():
        nbytes = int(np.prod(spec.hf_shape)) * store.itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, spec.hf_shape, store))
        size += nbytes

    def produce(name):
        spec = specs[name]
        return spec.to_hf(np.asarray(jax.device_get(_variable(model, spec.path)[...]), dtype=store))

    for stale in ("model.safetensors", "model.safetensors.index.json"):
        if os.path.exists(os.path.join(path, stale)):
            os.remove(os.path.join(path, stale))
    files = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    total = 0
    for file, shard in zip(files, shards):
        total += write_safetensors(os.path.join(path, file), shard, produce, {"format": "pt"})
    if len(files) > 1:
        weight_map = {name: file for file, shard in zip(files, shards) for name, _, _ in shard}
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return files


def load_tokenizer(path: str):
    """`transformers.AutoTokenizer` from a checkpoint or tokenizer directory (no network)."""
    from transformers import AutoTokenizer

    if not os.path.isdir(path):
        raise FileNotFoundError(f"tokenizer directory {path} does not exist")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def check_tokenizer_matches(tokenizer, config: DecoderConfig) -> None:
    """Fails before any work when tokenizer and model do not belong together: token ids beyond
    the model's vocabulary, or an EOS token the model does not end sequences with."""
    if len(tokenizer) > config.vocab_size:
        raise ConfigError(
            f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
            f"{config.vocab_size}: they do not belong together")
    eos = tokenizer.eos_token_id
    if eos is not None and config.eos_ids and eos not in config.eos_ids:
        raise ConfigError(
            f"tokenizer's EOS token {tokenizer.eos_token!r} (id {eos}) is not among the model's EOS "
            f"ids {list(config.eos_ids)} (config.json / generation_config.json): they do not "
            "belong together (use the checkpoint's own tokenizer)")
