"""The launcher runs the default config end to end and rejects bad configs clearly."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(tmp_path, *overrides, devices=1, config="configs/default.py"):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "prm_jax.main", f"--config={config}",
           f"--workdir={tmp_path}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_default_config_runs_sharded(tmp_path):
    proc = _launch(tmp_path, "--config.train_steps=6", "--config.mesh.data=2",
                   "--config.mesh.fsdp=2", "--config.mesh.tensor=2", devices=8)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())["model_check"]
    assert summary["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    assert summary["parameters"] > 100_000
    assert summary["losses"][-1] < summary["losses"][0] - 0.5
    assert summary["export_max_abs_err"] < 1e-5
    assert (tmp_path / "export" / "model.safetensors").exists()
    assert (tmp_path / "export" / "tokenizer.json").exists()
    assert "parameters" in proc.stdout and "P('fsdp', 'tensor', None)" in proc.stdout


@pytest.mark.parametrize("override, message", [
    ("--config.model.hidden_sise=64", "unknown config key 'model.hidden_sise'"),
    ("--config.nope=1", "unknown config key 'nope'"),
    ("--config.model.num_layers=two", "invalid literal for int"),
    ("--config.model.num_heads=3", "must be a multiple of num_kv_heads"),
    ("--config.model.dtype=fp8", "dtype='fp8'"),
    ("--config.mesh.tensor=3", "1 devices are not divisible by the fixed axes' product 3"),
    ("--config.stages=('sft_typo',)", "unknown stages ['sft_typo']"),
    ("--config.init_from=/no/such/checkpoint", "does not exist"),
])
def test_bad_config_is_a_clear_error(tmp_path, override, message):
    proc = _launch(tmp_path, override, "--config.train_steps=1")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_tokenizer_model_mismatch(tmp_path):
    proc = _launch(tmp_path, "--config.model.vocab_size=100", "--config.train_steps=1")
    assert proc.returncode != 0
    assert "tokenizer has 1024 tokens but the model's vocab_size is 100" in proc.stderr


def test_eval_config_samples_and_scores(tmp_path):
    proc = _launch(tmp_path, "--config.eval.max_problems=6", "--config.eval.n=2",
                   "--config.eval.max_new_tokens=24", "--config.eval.ks=(1,2)",
                   config="configs/eval_synthetic.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())["evaluate"]
    assert summary["problems"] == 6 and summary["samples"] == 12
    assert 0.0 <= summary["pass@1"] <= 1.0 and "by_horizon" in summary
    samples = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 12
    assert len((tmp_path / "eval_results.jsonl").read_text().splitlines()) == 6
