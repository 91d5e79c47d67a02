"""The RL stage end to end on the shrunk pipeline: runs, logs every metric, exports the policy,
and a run killed with SIGKILL mid-iteration resumes to exactly the uninterrupted parameters."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_launcher import ROOT, SMALL_PIPELINE

RL = ("--config.rl.iterations=4", "--config.rl.prompts=4", "--config.rl.samples=4",
      "--config.rl.max_new_tokens=48", "--config.rl.eval_every=2", "--config.rl.checkpoint_every=2",
      "--config.rl.num_problems=32")
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu",
           PYTHONPATH=ROOT)


def _cmd(workdir, *extra):
    return [sys.executable, "-m", "prm_jax.main", f"--config={ROOT}/configs/default.py",
            f"--workdir={workdir}", *SMALL_PIPELINE, *RL, *extra]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A workdir with the SFT policy and the PRM (the stages before RL)."""
    workdir = tmp_path_factory.mktemp("rl") / "base"
    proc = subprocess.run(_cmd(workdir, "--config.stages=('sft','sample','label','prm_train')"),
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(os.path.join(path, "model.safetensors"))


def test_rl_stage_runs_and_resumes_exactly(prepared, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    shutil.copytree(prepared, full)
    shutil.copytree(prepared, killed)
    proc = subprocess.run(_cmd(full, "--config.stages=('rl',)"), env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((full / "summary.json").read_text())["rl"]
    assert summary["iterations"] == 4 and 0 <= summary["test"]["pass@1"] <= 1
    assert "pass@1" in summary["test_before"]
    rows = [json.loads(line) for line in (full / "rl" / "metrics.jsonl").read_text().splitlines()]
    it4 = [r for r in rows if r["step"] == 4 and "rl/rollout/pass_rate" in r][0]
    for key in ("rollout/pass_rate", "reward/dense_sum_failing", "kl/k1", "kl/k3", "loss/pg_clipfrac",
                "loss/vf_loss", "critic/explained_variance", "policy/entropy", "shape/code_lines",
                "shape/comment_fraction", "shape/duplicate_line_fraction",
                "rollout/masked_infrastructure", "sampler/tokens_per_s", "time/sample", "time/update"):
        assert f"rl/{key}" in it4, key
        assert np.isfinite(it4[f"rl/{key}"]), key
    assert any("rl/eval/pass@1" in r for r in rows if r["step"] == 2)
    assert (full / "policy_rl" / "DONE").exists()

    # SIGKILL after the iteration-2 checkpoint, in the middle of iteration 3; then resume.
    p = subprocess.Popen(_cmd(killed, "--config.stages=('rl',)"), env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = killed / "rl" / "checkpoints" / "2"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    _, err = p.communicate()
    assert checkpoint.exists(), err[-3000:]
    assert not (killed / "policy_rl" / "DONE").exists()
    resumed = subprocess.run(_cmd(killed, "--config.stages=('rl',)"), env=ENV, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(full / "policy_rl"), _weights(killed / "policy_rl")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    steps = [json.loads(line)["step"] for line in (killed / "rl" / "metrics.jsonl").read_text().splitlines()
             if "rl/rollout/pass_rate" in line]
    assert steps == [1, 2, 3, 4]
    # Another arm in the same workdir runs; changing an existing arm's config is refused.
    changed = subprocess.run(_cmd(killed, "--config.stages=('rl',)", "--config.rl.kl_coef=0.5"),
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert changed.returncode != 0 and "rl.kl_coef: 0.01 -> 0.5" in changed.stderr
