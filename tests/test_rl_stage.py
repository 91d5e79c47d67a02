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

from pipeline_fixtures import ROOT, SMALL_PIPELINE, reap_orphans

# A second RL arm ("arm") in a copy of the shrunk pipeline's workdir: its SFT policy and PRM are
# reused, and the arm's own config.json keeps it apart from the pipeline's "rl" run.
RL = ("--config.rl.name=arm", "--config.rl.iterations=4", "--config.rl.prompts=4",
      "--config.rl.samples=4",
      "--config.rl.max_new_tokens=48", "--config.rl.eval_every=2", "--config.rl.checkpoint_every=2",
      "--config.rl.num_problems=32", "--config.rl.snapshots=2")
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu",
           PYTHONPATH=ROOT)


def _cmd(workdir, *extra):
    return [sys.executable, "-m", "prm_jax.main", f"--config={ROOT}/configs/default.py",
            f"--workdir={workdir}", *SMALL_PIPELINE, *RL, *extra]


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(os.path.join(path, "model.safetensors"))


def test_rl_stage_runs_and_resumes_exactly(small_run, tmp_path):
    prepared, _ = small_run
    full, killed = tmp_path / "full", tmp_path / "killed"
    shutil.copytree(prepared, full)
    shutil.copytree(prepared, killed)
    proc = subprocess.run(_cmd(full, "--config.stages=('rl',)"), env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((full / "summary.json").read_text())["rl"]
    assert summary["iterations"] == 2  # the pipeline's own run is untouched...
    summary = json.loads((full / "summary.json").read_text())["arm"]  # ...the arm has its own entry
    assert summary["iterations"] == 4 and 0 <= summary["test"]["pass@1"] <= 1
    assert "pass@1" in summary["test_before"]
    rows = [json.loads(line) for line in (full / "arm" / "metrics.jsonl").read_text().splitlines()]
    it4 = [r for r in rows if r["step"] == 4 and "arm/rollout/pass_rate" in r][0]
    for key in ("rollout/pass_rate", "reward/dense_sum_failing", "kl/k1", "kl/k3", "loss/pg_clipfrac",
                "loss/vf_loss", "critic/explained_variance", "policy/entropy", "shape/code_lines",
                "shape/comment_fraction", "shape/duplicate_line_fraction",
                "rollout/masked_infrastructure", "sampler/tokens_per_s", "time/sample", "time/update"):
        assert f"arm/{key}" in it4, key
        assert np.isfinite(it4[f"arm/{key}"]), key
    assert any("arm/eval/pass@1" in r for r in rows if r["step"] == 2)
    assert (full / "policy_arm" / "DONE").exists()

    # SIGKILL after the iteration-2 checkpoint, in the middle of iteration 3; then resume.
    p = subprocess.Popen(_cmd(killed, "--config.stages=('rl',)"), env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = killed / "arm" / "checkpoints" / "2"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    _, err = p.communicate()
    assert checkpoint.exists(), err[-3000:]
    assert not (killed / "policy_arm" / "DONE").exists()
    resumed = subprocess.run(_cmd(killed, "--config.stages=('rl',)"), env=ENV, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reap_orphans()  # the killed run's sandbox workers
    # The final policy and the snapshots (iterations 2 and 4) equal the uninterrupted run's.
    for export in ("policy_arm", "policy_arm_it2", "policy_arm_it4"):
        assert (killed / export / "DONE").exists(), export
        a, b = _weights(full / export), _weights(killed / export)
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{export}/{name}")
    assert not np.array_equal(_weights(full / "policy_arm_it2")["model.embed_tokens.weight"],
                              _weights(full / "policy_arm_it4")["model.embed_tokens.weight"])
    steps = [json.loads(line)["step"] for line in (killed / "arm" / "metrics.jsonl").read_text().splitlines()
             if "arm/rollout/pass_rate" in line]
    assert steps == [1, 2, 3, 4]
    # Changing an existing arm's config is refused.
    changed = subprocess.run(_cmd(killed, "--config.stages=('rl',)", "--config.rl.kl_coef=0.5"),
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert changed.returncode != 0 and "rl.kl_coef: 0.01 -> 0.5" in changed.stderr
