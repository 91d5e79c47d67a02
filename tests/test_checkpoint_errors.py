"""Bad checkpoints fail with errors that name the problem; nothing half-loads silently."""

import json
import shutil

import numpy as np
import pytest

from hf_fixtures import make_hf_model
from prm_jax.models import CheckpointError, ConfigError, DecoderConfig, load_pretrained
from prm_jax.models.safetensors_io import SafetensorsError, SafetensorsReader, write_safetensors


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    make_hf_model("llama_untied_gqa_theta").save_pretrained(path)
    return path


def _copy(checkpoint, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(checkpoint, dst)
    return dst


def _rewrite(path, edit):
    """Rewrites model.safetensors with `edit(dict of arrays)` applied."""
    file = path / "model.safetensors"
    with SafetensorsReader(file) as r:
        tensors = {n: r.read(n) for n in r.keys()}
    edit(tensors)
    write_safetensors(file, [(n, a.shape, a.dtype) for n, a in tensors.items()], tensors.__getitem__)


def test_missing_tensor_is_named(checkpoint, tmp_path):
    path = _copy(checkpoint, tmp_path)
    _rewrite(path, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensors \['model.layers.1.mlp.up_proj.weight'\]"):
        load_pretrained(str(path))


def test_extra_tensor_is_named(checkpoint, tmp_path):
    path = _copy(checkpoint, tmp_path)
    _rewrite(path, lambda t: t.update({"model.layers.7.extra.weight": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match="unexpected tensor 'model.layers.7.extra.weight'"):
        load_pretrained(str(path))


def test_misshaped_tensor_is_named(checkpoint, tmp_path):
    path = _copy(checkpoint, tmp_path)
    _rewrite(path, lambda t: t.update({"model.norm.weight": np.zeros(5, np.float32)}))
    with pytest.raises(CheckpointError, match=r"'model.norm.weight' has shape \(5,\), expected \(32,\)"):
        load_pretrained(str(path))


def test_unsupported_architecture(checkpoint, tmp_path):
    path = _copy(checkpoint, tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["MistralForCausalLM"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unsupported architecture.*MistralForCausalLM"):
        load_pretrained(str(path))
    config.update(architectures=["LlamaForCausalLM"], hidden_act="gelu")
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="hidden_act='gelu'"):
        load_pretrained(str(path))


def test_missing_files(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(str(tmp_path / "nowhere"))
    path = _copy(checkpoint, tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="neither model.safetensors"):
        load_pretrained(str(path))


def test_truncated_and_garbage_files(checkpoint, tmp_path):
    path = _copy(checkpoint, tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SafetensorsError, match="runs past the end|truncated"):
        load_pretrained(str(path))
    (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(SafetensorsError, match="not valid JSON"):
        load_pretrained(str(path))


def test_scalar_checkpoint_cannot_load_as_lm(tmp_path):
    make_hf_model("qwen2_tied_gqa", head="scalar").save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no LM head"):
        load_pretrained(str(tmp_path), head="lm")


def test_config_values_are_validated():
    with pytest.raises(ConfigError, match="num_heads=6 must be a multiple of num_kv_heads=4"):
        DecoderConfig(vocab_size=10, hidden_size=24, intermediate_size=8, num_layers=1,
                      num_heads=6, num_kv_heads=4)
    with pytest.raises(ConfigError, match="rope scaling type 'yarn'"):
        DecoderConfig(vocab_size=10, hidden_size=8, intermediate_size=8, num_layers=1,
                      num_heads=2, num_kv_heads=2, rope_scaling={"rope_type": "yarn", "factor": 2})
    with pytest.raises(ConfigError, match="dtype='fp8'"):
        DecoderConfig(vocab_size=10, hidden_size=8, intermediate_size=8, num_layers=1,
                      num_heads=2, num_kv_heads=2, dtype="fp8")
