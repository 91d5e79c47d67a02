"""prm_jax.explore: which workdir the notebooks open, and the headline table."""

import json

import pytest

from prm_jax import explore


def _summary(path, stages):
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps({s: {} for s in stages}))


def test_ensure_run_takes_only_finished_pipelines(tmp_path, monkeypatch):
    monkeypatch.delenv("PRM_JAX_WORKDIR", raising=False)
    finished, partial = tmp_path / "finished", tmp_path / "partial"
    _summary(finished, explore.PIPELINE_STAGES + ("rl",))
    _summary(partial, ("sft", "sample"))
    assert explore.ensure_run(finished) == finished.resolve()
    with pytest.raises(FileNotFoundError, match="label"):
        explore.ensure_run(partial)
    monkeypatch.setenv("PRM_JAX_WORKDIR", str(finished))
    assert explore.ensure_run() == finished.resolve()
    # Neither given: runs/default when finished, else runs/small (made if unfinished).
    monkeypatch.delenv("PRM_JAX_WORKDIR")
    monkeypatch.setattr(explore, "DEFAULT_WORKDIR", partial)
    monkeypatch.setattr(explore, "SMALL_WORKDIR", finished)
    assert explore.ensure_run() == finished
    monkeypatch.setattr(explore, "DEFAULT_WORKDIR", finished)
    assert explore.ensure_run() == finished


def test_headline_puts_baselines_beside_figures():
    summary = {"sft": {"test": {"pass@1": 0.25}},
               "prm_eval": {"probe": {"pair_accuracy": 0.7, "pair_auroc": 0.6},
                            "responses": {"failing": {"scorer": {"auroc": 0.9, "first_error_accuracy": 0.4},
                                                      "position": {"auroc": 0.8, "first_error_accuracy": 0.45}}}}}
    rows = {name: (value, baseline) for name, value, baseline in explore.headline(summary)}
    assert rows["SFT held-out greedy pass@1"][0] == "0.250"
    assert rows["PRM probe: wrong line below the right one"] == ("0.700", "0.5 (any scorer of task + position)")
    assert rows["PRM: line AUROC among failing responses' lines"] == ("0.900", "position table 0.800")
    assert not any(name.startswith("rl") for name in rows)  # absent stages are left out
