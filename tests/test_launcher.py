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
    proc = _launch(tmp_path, "--config.stages=('model_check',)", "--config.train_steps=6", "--config.mesh.data=2",
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
    proc = _launch(tmp_path, "--config.stages=('model_check',)", override, "--config.train_steps=1")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_tokenizer_model_mismatch(tmp_path):
    proc = _launch(tmp_path, "--config.stages=('model_check',)", "--config.model.vocab_size=100",
                   "--config.train_steps=1")
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


SMALL_PIPELINE = (
    "--config.data.num_train=64", "--config.data.num_test=8", "--config.data.max_horizon=3",
    "--config.sft.steps=30", "--config.sft.checkpoint_every=10", "--config.sft.snapshot_steps=(10,)",
    "--config.sample.num_problems=8", "--config.sample.n=2", "--config.sample.snapshot_n=1",
    "--config.sample.max_new_tokens=48", "--config.label.k=2", "--config.label.mc_responses=3",
    "--config.label.mutation_responses=4", "--config.prm.steps=10", "--config.prm.batch_size=4",
    "--config.prm.heldout_fraction=0.5", "--config.model.num_layers=1",
    "--config.model.hidden_size=64", "--config.model.intermediate_size=128")


def test_default_pipeline_end_to_end_small(tmp_path):
    """SFT → sample → label → PRM train → PRM eval, shrunk to run in about a minute."""
    proc = _launch(tmp_path, *SMALL_PIPELINE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"sft", "sample", "label", "prm_train", "prm_eval"}
    assert "by_horizon" in summary["sft"]["test"]
    # Responses from two checkpoints: the step-10 snapshot (1 each) and the final policy (2 each).
    assert summary["sample"]["responses"] == 24
    assert set(summary["sample"]["pass_rate_by_policy"]) == {"policy_step10", "policy"}
    assert summary["label"]["binary_search"]["responses"] == 24
    assert 0.0 <= summary["label"]["agreement"]["line_agreement"] <= 1.0
    assert "auroc" in summary["prm_eval"]["prm"] and "position" in summary["prm_eval"]["baselines"]
    for name in ("policy/config.json", "policy_step10/config.json", "prm/config.json",
                 "labels_binary_search.jsonl", "labels_monte_carlo.jsonl", "labels_mutation.jsonl",
                 "responses.jsonl", "sft/metrics.jsonl", "prm_training/metrics.jsonl"):
        assert (tmp_path / name).exists(), name
    # A second run resumes: nothing is retrained or relabelled.
    again = _launch(tmp_path, *SMALL_PIPELINE)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((tmp_path / "summary.json").read_text())
    assert resumed["sft"]["resumed"] and resumed["prm_train"]["resumed"]
    assert resumed["label"]["binary_search"] == {**summary["label"]["binary_search"],
                                                 "seconds": resumed["label"]["binary_search"]["seconds"]}
