"""experiments/rl_seeds.py end to end on the shrunk pipeline: arms × seeds, intervals, pairing."""

import json
import os
import shutil
import subprocess
import sys

from pipeline_fixtures import ROOT, SMALL_PIPELINE


def test_arms_by_seeds_with_intervals_and_a_paired_difference(small_run, tmp_path):
    source, summary = small_run
    workdir = tmp_path / "copy"
    shutil.copytree(source, workdir)
    overrides = [o.removeprefix("--config.") for o in SMALL_PIPELINE] + ["rl.iterations=1"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    proc = subprocess.run(
        [sys.executable, "experiments/rl_seeds.py", f"--workdir={workdir}", "--arms", "sparse",
         "psgpo", "--seeds", "0", "1", "--set", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((workdir / "rl_seeds.json").read_text())
    after = json.loads((workdir / "summary.json").read_text())
    for arm in ("sparse", "psgpo"):
        values = [after[f"{arm}_s{seed}"]["test"]["pass@1"] for seed in (0, 1)]
        assert report["arms"][arm]["pass@1"] == values
        assert abs(report["arms"][arm]["mean"] - sum(values) / 2) < 1e-12
        assert report["arms"][arm]["ci95"] >= 0
        # Every arm and seed starts from the same SFT policy on the same held-out problems.
        assert after[f"{arm}_s1"]["test_before"] == summary["rl"]["test_before"]
    diffs = report["paired_difference"]["per_seed"]
    assert diffs == [after[f"psgpo_s{s}"]["test"]["pass@1"] - after[f"sparse_s{s}"]["test"]["pass@1"]
                     for s in (0, 1)]
    assert "psgpo − sparse" in proc.stdout and "SFT policy" in proc.stdout
    # Finished runs are reused: a second invocation runs nothing.
    again = subprocess.run(
        [sys.executable, "experiments/rl_seeds.py", f"--workdir={workdir}", "--arms", "sparse",
         "psgpo", "--seeds", "0", "1", "--set", *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "running" not in again.stdout
