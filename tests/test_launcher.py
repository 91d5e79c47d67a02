"""The launcher runs the default config end to end and rejects bad configs clearly."""

import collections
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from pipeline_fixtures import ROOT, SMALL_PIPELINE, STAGES, launch as _launch, reap_orphans


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


def test_default_pipeline_end_to_end_small(small_run):
    tmp_path, summary = small_run
    assert set(summary) == STAGES
    assert "by_horizon" in summary["sft"]["test"] and "loss" in summary["sft"]
    # One response per problem from each of four checkpoints: the SFT step-10 snapshot, the final
    # SFT policy and the outcome-only RL run's two snapshots (iterations 1 and 2).
    assert summary["sample"]["responses"] == 32
    assert set(summary["sample"]["pass_rate_by_policy"]) == {
        "policy_step10", "policy", "policy_rl_baseline_it1", "policy_rl_baseline_it2"}
    assert summary["label"]["binary_search"]["responses"] == 32
    assert summary["rl_baseline"]["iterations"] == 2 and "test_before" in summary["rl_baseline"]
    assert 0.0 <= summary["label"]["agreement"]["line_agreement"] <= 1.0
    assert 0.0 <= summary["prm_eval"]["probe"]["pair_accuracy"] <= 1.0
    assert "position" in summary["prm_eval"]["responses"]["failing"]
    assert "binary_search" in summary["label"]["accuracy"]
    for name in ("policy/config.json", "policy/generation_config.json", "policy_step10/config.json",
                 "prm/config.json", "labels_binary_search.jsonl", "labels_monte_carlo.jsonl",
                 "labels_mutation.jsonl", "responses.jsonl", "sft/metrics.jsonl",
                 "prm_training/metrics.jsonl", "config.json", "rl/metrics.jsonl",
                 "policy_rl/model.safetensors", "rl_baseline/metrics.jsonl",
                 "policy_rl_baseline/DONE", "policy_rl_baseline_it1/DONE",
                 "policy_rl_baseline_it2/model.safetensors"):
        assert (tmp_path / name).exists(), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["workdir"] == str(tmp_path) and config["sft"]["steps"] == 30


def test_rerun_resumes_with_the_same_summary(small_run, tmp_path):
    source, summary = small_run
    workdir = tmp_path / "copy"
    shutil.copytree(source, workdir)
    again = _launch(workdir, *SMALL_PIPELINE)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((workdir / "summary.json").read_text())
    assert resumed["sft"]["resumed"] and resumed["prm_train"]["resumed"] and resumed["rl"]["resumed"]
    assert _shape(resumed) == _shape(summary)  # the same fields as the uninterrupted run
    assert resumed["sft"]["loss"] == summary["sft"]["loss"]
    assert resumed["label"]["binary_search"] == {**summary["label"]["binary_search"],
                                                 "seconds": resumed["label"]["binary_search"]["seconds"]}
    # A run of some stages merges into the summary instead of replacing it.
    subset = _launch(workdir, *SMALL_PIPELINE, "--config.stages=('prm_eval',)")
    assert subset.returncode == 0, subset.stderr[-3000:]
    merged = json.loads((workdir / "summary.json").read_text())
    assert set(merged) == STAGES and merged["sft"] == resumed["sft"]
    # A result-changing key that differs from the workdir's run is refused, naming the key.
    config_before = (workdir / "config.json").read_text()
    changed = _launch(workdir, *SMALL_PIPELINE, "--config.sft.steps=31", "--config.label.k=3")
    assert changed.returncode != 0
    assert "sft.steps: 30 -> 31" in changed.stderr and "label.k: 2 -> 3" in changed.stderr
    assert "Traceback" not in changed.stderr
    assert (workdir / "config.json").read_text() == config_before


def _shape(tree):
    """The nested key structure of a summary (values dropped; dicts keyed by data kept)."""
    if isinstance(tree, dict):
        return {k: _shape(v) for k, v in tree.items() if k not in ("stage_seconds",)}
    return type(tree).__name__ if not isinstance(tree, (int, float)) else "number"


def _tb_steps(run_dir):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = collections.Counter()
    for name in os.listdir(run_dir / "tb"):
        for event in EventFileLoader(str(run_dir / "tb" / name)).Load():
            for value in event.summary.value:
                steps[(value.tag, event.step)] += 1
    return steps


def test_relative_workdir_killed_and_resumed(small_run, tmp_path):
    """The README's way: a relative --workdir from another current directory; killed once
    mid-training, then resumed to the same results, each logged step exactly once."""
    _, reference = small_run
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "prm_jax.main", f"--config={ROOT}/configs/default.py",
           "--workdir=runs/small", *SMALL_PIPELINE]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    checkpoint = cwd / "runs" / "small" / "sft" / "checkpoints" / "20"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate()
    assert checkpoint.exists(), err[-3000:]
    workdir = cwd / "runs" / "small"
    assert not (workdir / "policy" / "DONE").exists(), "killed too late to test a resume"
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    reap_orphans()  # the killed run's sandbox workers, if any were running
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert _shape(summary) == _shape(reference)
    assert summary["sft"]["resumed"] is False and summary["sft"]["steps"] == 30
    assert summary["sft"]["loss"] == pytest.approx(reference["sft"]["loss"], abs=1e-5)
    assert summary["sample"]["pass_rate"] == reference["sample"]["pass_rate"]
    steps = [json.loads(line)["step"] for line in (workdir / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 30
    tb = _tb_steps(workdir / "sft")
    assert tb and max(tb.values()) == 1, [k for k, v in tb.items() if v > 1][:5]
    assert {step for _, step in tb} == set(steps)


@pytest.mark.parametrize("override, message", [
    ("--config.sft.steps=-1", "config.sft.steps=-1: expected a positive number"),
    ("--config.sft.batch_size=0", "config.sft.batch_size=0"),
    ("--config.sft.learning_rate=-0.1", "config.sft.learning_rate=-0.1"),
    ("--config.data.min_horizon=5", "config.data.max_horizon=4: expected an integer >= data.min_horizon=5"),
    ("--config.label.k=0", "config.label.k=0"),
    ("--config.label.wave=0", "config.label.wave=0"),
    ("--config.prm.loss=prm_hinge", "config.prm.loss='prm_hinge': expected one of"),
    ("--config.prm.selection=best", "config.prm.selection='best'"),
    ("--config.prm.heldout_fraction=1.5", "config.prm.heldout_fraction=1.5: expected a fraction"),
    ("--config.model.num_heads=3", "must be a multiple of num_kv_heads"),
    ("--config.mesh.tensor=8", "1 devices are not divisible"),
    ("--config.tokenizer=/no/such/dir", "config.tokenizer='/no/such/dir'"),
])
def test_invalid_values_stop_before_any_work(tmp_path, override, message):
    workdir = tmp_path / "run"
    start = time.monotonic()
    proc = _launch(workdir, override)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "SFT:" not in proc.stdout
    assert not workdir.exists()  # nothing written
    assert time.monotonic() - start < 60


def test_workdir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("keep me")
    proc = _launch(tmp_path / "file")
    assert proc.returncode != 0 and "exists and is not a directory" in proc.stderr
    assert (tmp_path / "file").read_text() == "keep me"
