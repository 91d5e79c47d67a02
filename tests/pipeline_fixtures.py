"""The shrunk default pipeline shared by the launcher and RL tests (run once per session)."""

import importlib.util
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




def _small_overrides() -> tuple[str, ...]:
    """configs/small.py's values as launcher flags on configs/default.py."""
    spec = importlib.util.spec_from_file_location("prm_jax_small_config",
                                                  os.path.join(ROOT, "configs", "small.py"))
    small = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small)
    return tuple(f"--config.{key}={value!r}" for key, value in small.OVERRIDES.items())


SMALL_PIPELINE = _small_overrides()
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
