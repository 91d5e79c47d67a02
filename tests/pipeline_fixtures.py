"""The shrunk default pipeline shared by the launcher and RL tests (run once per session)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(tmp_path, *overrides, devices=1, config="configs/default.py"):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "prm_jax.main", f"--config={config}",
           f"--workdir={tmp_path}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


SMALL_PIPELINE = (
    "--config.data.num_train=64", "--config.data.num_test=8", "--config.data.max_horizon=3",
    "--config.sft.steps=30", "--config.sft.checkpoint_every=10", "--config.sft.snapshot_steps=(10,)",
    "--config.sample.num_problems=8", "--config.sample.n=1", "--config.sample.snapshot_n=1",
    "--config.sample.rl_baseline_n=1",
    "--config.sample.max_new_tokens=48", "--config.label.k=2", "--config.label.mc_responses=3",
    "--config.label.mutation_responses=4", "--config.prm.steps=10", "--config.prm.batch_size=4",
    "--config.prm.heldout_fraction=0.5", "--config.prm.probe_problems=12",
    "--config.label.reference_tasks=4", "--config.model.num_layers=1",
    "--config.model.hidden_size=64", "--config.model.intermediate_size=128",
    "--config.rl.iterations=2", "--config.rl.prompts=4", "--config.rl.samples=2",
    "--config.rl.max_new_tokens=48", "--config.rl.eval_every=0", "--config.rl.checkpoint_every=1",
    "--config.rl.num_problems=16",
    "--config.rl_baseline.iterations=2", "--config.rl_baseline.prompts=4",
    "--config.rl_baseline.samples=2", "--config.rl_baseline.max_new_tokens=48",
    "--config.rl_baseline.eval_every=0", "--config.rl_baseline.checkpoint_every=1",
    "--config.rl_baseline.num_problems=16", "--config.rl_baseline.snapshots=2")
STAGES = {"sft", "rl_baseline", "sample", "label", "prm_train", "prm_eval", "rl"}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """The default pipeline (SFT → outcome-only RL → sample → label → PRM train → PRM eval →
    PSGPO RL), shrunk to run in about a minute."""
    workdir = tmp_path_factory.mktemp("small_run")
    proc = launch(workdir, *SMALL_PIPELINE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir, json.loads((workdir / "summary.json").read_text())




def reap_orphans() -> int:
    """Reaps zombie children of this process that no Popen owns.

    An in-process SandboxPool makes the test process a child subreaper, so the sandbox workers of
    a launcher killed with SIGKILL are re-parented here when they die; reap them so later tests
    that check for unreaped children see only their own."""
    me, reaped = str(os.getpid()), 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            try:
                os.waitpid(int(name), os.WNOHANG)
                reaped += 1
            except ChildProcessError:
                pass
    return reaped
