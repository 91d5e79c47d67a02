"""experiments/psgpo_grid.py end to end on the shrunk pipeline: a 2 arms × 2 seeds grid, its
table, CSV, JSON and plots, intervals recomputed from the per-problem rows, resumption."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from pipeline_fixtures import ROOT

from prm_jax import grid_stats

PNG = b"\x89PNG\r\n\x1a\n"


def _grid(workdir, out, *extra, timeout=900):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    return subprocess.run(
        [sys.executable, "experiments/psgpo_grid.py", f"--workdir={workdir}", f"--out={out}",
         *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_tiny_grid_end_to_end(small_run, tmp_path):
    source, summary = small_run
    workdir, out = tmp_path / "copy", tmp_path / "grid"
    shutil.copytree(source, workdir)
    args = ["--arms", "sparse", "psgpo", "--seeds", "0", "1", "--pass_at_k", "2",
            "--set", "rl.iterations=1"]
    proc = _grid(workdir, out, *args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    after = json.loads((workdir / "summary.json").read_text())
    report = json.loads((out / "results.json").read_text())
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["arm"], r["seed"]) for r in rows] == [("sparse", "0"), ("sparse", "1"),
                                                     ("psgpo", "0"), ("psgpo", "1")]
    for r in rows:
        name = f"{r['arm']}_s{r['seed']}"
        assert r["run"] == name and f"rl.seed={r['seed']}" in r["config"]
        assert float(r["pass@1"]) == after[name]["test"]["pass@1"]
        # Every arm and seed starts from the same SFT policy on the same held-out problems.
        assert float(r["pass@1_before"]) == summary["rl"]["test_before"]["pass@1"]

    # Intervals are computed from the per-problem outcomes, not assumed.
    def matrix(arm):
        return np.asarray([[np.nan if p["passed"] is None else p["passed"]
                            for p in run["problems_after"]] for run in report["runs"][arm]])

    for arm in ("sparse", "psgpo"):
        per_run = [np.nanmean(row) for row in matrix(arm)]
        assert np.allclose(per_run, [after[f"{arm}_s{s}"]["test"]["pass@1"] for s in (0, 1)])
        ci = report["arms"][arm]["subsets"]["all"]
        assert (ci["mean"], ci["low"], ci["high"]) == grid_stats.bootstrap_ci(matrix(arm))
    delta = report["arms"]["psgpo"]["vs_sparse"]["all"]
    assert (delta["mean"], delta["low"], delta["high"]) == \
        grid_stats.paired_difference_ci(matrix("psgpo"), matrix("sparse"))
    sft = np.asarray([[np.nan if p["passed"] is None else p["passed"]
                       for p in report["runs"]["sparse"][0]["problems_before"]]], float)
    gain = report["arms"]["psgpo"]["vs_sft"]["all"]
    assert (gain["mean"], gain["low"], gain["high"]) == \
        grid_stats.paired_difference_ci(matrix("psgpo"), np.repeat(sft, 2, axis=0))
    assert np.allclose(report["arms"]["sparse"]["gain_over_sft_t_interval"]["per_seed"],
                       [after[f"sparse_s{s}"]["test"]["pass@1"]
                        - after[f"sparse_s{s}"]["test_before"]["pass@1"] for s in (0, 1)])
    power = report["arms"]["psgpo"]["power"]
    assert np.allclose(power["per_seed_differences"],
                       [after[f"psgpo_s{s}"]["test"]["pass@1"] - after[f"sparse_s{s}"]["test"]["pass@1"]
                        for s in (0, 1)])
    # Horizon subsets partition the problems.
    horizons = [k for k in report["subsets"] if k.startswith("H=")]
    assert sum(report["subsets"][k] for k in horizons) == report["problems"]
    table = (out / "table.md").read_text()
    assert "| sft |" in table and "| psgpo |" in table and "minimum detectable effect" in table
    assert "Δ vs SFT" in table and "sparse − SFT per seed" in table
    for name in ("pass_at_1_curves.png", "pass_at_1_by_horizon.png", "hacking.png"):
        assert (out / name).read_bytes()[:8] == PNG

    # Sampled pass@k (2 samples per problem): kept beside each run, recomputed here from the
    # per-problem counts (pass@1 = c/2, pass@2 = [c ≥ 1]).
    def sampled(run_dir):
        return json.loads((run_dir / "eval_sampled_n2_t1.json").read_text())

    sft_eval = sampled(workdir / "sft")
    assert len(sft_eval["problems"]) == report["problems"]
    for arm in ("sparse", "psgpo"):
        evals = [sampled(workdir / f"{arm}_s{s}") for s in (0, 1)]
        for k, of in ((1, lambda n, c: c / n), (2, lambda n, c: float(c >= 1))):
            m = np.asarray([[of(p["n"], p["correct"]) if p["n"] >= k else np.nan
                             for p in e["problems"]] for e in evals])
            ci = report["pass_at_k"]["arms"][arm][f"pass@{k}"]["all"]
            assert (ci["mean"], ci["low"], ci["high"]) == grid_stats.bootstrap_ci(m)
            assert np.isclose(np.nanmean(m[0]), evals[0][f"pass@{k}"])
    assert "pass@2_vs_sparse" in report["pass_at_k"]["arms"]["psgpo"]
    assert "| psgpo |" in (out / "pass_at_k.md").read_text()

    # Finished runs are reused: a second invocation runs nothing and writes the same table.
    again = _grid(workdir, out, *args, timeout=300)
    assert again.returncode == 0 and "running" not in again.stdout
    assert "sampled pass@k of" not in again.stdout
    assert (out / "table.md").read_text() == table


def test_unknown_arm_and_missing_run_are_named(tmp_path):
    proc = _grid(tmp_path, tmp_path / "out", "--arms", "nope", "--seeds", "0", timeout=120)
    assert proc.returncode != 0 and "unknown arms ['nope']" in proc.stderr
    proc = _grid(tmp_path, tmp_path / "out", "--grid", "key", timeout=120)
    assert proc.returncode != 0 and "no finished pipeline run" in proc.stderr


def test_prm_variant_arm_trains_its_own_prm_beside_the_pipeline(small_run, tmp_path):
    source, _ = small_run
    workdir, out = tmp_path / "copy", tmp_path / "grid"
    shutil.copytree(source, workdir)
    proc = _grid(workdir, out, "--arms", "sparse", "psgpo_prm_oracle", "--seeds", "0",
                 "--set", "rl.iterations=1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    variant = workdir / "prm_variants" / "oracle"
    config = json.loads((variant / "config.json").read_text())
    assert config["prm"]["label_sources"] == ["oracle"]
    assert (variant / "prm" / "DONE").exists() and (variant / "policy").is_symlink()
    # The pipeline's own PRM is untouched; the arm's run lives in the variant's workdir.
    assert (workdir / "prm" / "DONE").read_text() == (source / "prm" / "DONE").read_text()
    assert "psgpo_prm_oracle_s0" in json.loads((variant / "summary.json").read_text())
    # The variant's RL run uses the pipeline's RL section, like every other arm: only what the
    # arms name differs from the sparse run of the same seed.
    ours = json.loads((variant / "psgpo_prm_oracle_s0" / "config.json").read_text())
    theirs = json.loads((workdir / "sparse_s0" / "config.json").read_text())
    differing = {k for k in ours if ours[k] != theirs.get(k)}
    assert differing <= {"name", "dense", "critic_init"}, differing
    report = json.loads((out / "results.json").read_text())
    prm = report["arms"]["psgpo_prm_oracle"]["prm"]
    assert prm["label_sources"] == ["oracle"] and prm["labelling_rollouts"] == 0
    assert report["arms"]["sparse"]["prm"] == {}
    assert "vs_sparse" in report["arms"]["psgpo_prm_oracle"]


PARSE_FLAGS = """
import json, sys
from absl import flags
from ml_collections import config_flags
config = config_flags.DEFINE_config_file("config")
flags.FLAGS(sys.argv)
print(json.dumps({"selection": config.value.prm.selection,
                  "label_sources": list(config.value.prm.label_sources),
                  "lambda_fail": config.value.rl.lambda_fail}))
"""


def test_config_flag_values_parse_back():
    """The flags the grid passes to the launcher parse back (through ml_collections, as the
    launcher parses them) to the values the arms name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("psgpo_grid", os.path.join(ROOT, "experiments",
                                                                              "psgpo_grid.py"))
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    lambda_fail = grid.VARIANTS["psgpo_lambda0p1"][1]["rl.lambda_fail"]
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_FLAGS, "--config=configs/rl_ppo.py:psgpo",
         *grid._prm_flags("bs_revised"), f"--config.rl.lambda_fail={grid._flag_value(lambda_fail)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "selection": "revised_only", "label_sources": ["binary_search"], "lambda_fail": 0.1}
    assert set(grid.GRIDS["key"][0]) == {"sparse", "psgpo"} and len(grid.GRIDS["key"][1]) >= 5


def test_a_k_variant_relabels_in_its_own_workdir(tmp_path, monkeypatch):
    """A PRM variant that sets `label.k` runs the label stage itself (binary search, MC and
    their ground truth are drawn anew) and links the K-independent mutation label files."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("psgpo_grid", os.path.join(ROOT, "experiments",
                                                                              "psgpo_grid.py"))
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    workdir = tmp_path / "run"
    workdir.mkdir()
    for name in ("policy", "policy_rl_baseline", "labels_binary_search.jsonl",
                 "labels_monte_carlo.jsonl", "labels_ground_truth.jsonl", "labels_mutation.jsonl",
                 "labels_reference_mutation.jsonl", "responses.jsonl"):
        (workdir / name).write_text("")
    launched = []
    monkeypatch.setattr(grid, "_launch", lambda args, what: launched.append(args) or 1.0)
    assert grid.ensure_prm_variant(str(workdir), "k16", []) == 1.0
    variant = workdir / "prm_variants" / "k16"
    assert sorted(p.name for p in variant.iterdir()) == [
        "labels_mutation.jsonl", "labels_reference_mutation.jsonl", "policy", "policy_rl_baseline",
        "responses.jsonl"]
    assert "--config.stages=('label', 'prm_train', 'prm_eval')" in launched[0]
    assert "--config.label.k=16" in launched[0]
    # A variant that only retrains links every label file and does not relabel.
    grid.ensure_prm_variant(str(workdir), "bs_full", [])
    assert (workdir / "prm_variants" / "bs_full" / "labels_binary_search.jsonl").is_symlink()
    assert "--config.stages=('prm_train', 'prm_eval')" in launched[1]
    assert grid.GRIDS["k"][0] == ["sparse", "psgpo_prm_k1", "psgpo", "psgpo_prm_k16"]
