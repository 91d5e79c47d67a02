"""Training-curve pictures: which panels a run gets, the smoothing, and the file itself."""

import json

import numpy as np

from prm_jax.plots import (chosen_panels, compare_curves, label_cost_accuracy, moving_average,
                            read_series, rl_run_metrics, write_curves)
from prm_jax.train.loop import MetricsWriter


def test_panels_follow_what_the_run_logged():
    assert [n for n, _ in chosen_panels(["loss", "learning_rate", "grad_norm"])] == ["loss", "learning_rate"]
    rl = ["eval/pass@1", "rollout/pass_rate", "kl/k1", "shape/comment_fraction", "time/sample"]
    assert [n for n, _ in chosen_panels(rl)] == ["eval/pass@1", "rollout/pass_rate", "kl/k1",
                                               "shape/comment_fraction"]
    assert chosen_panels(["time/sample"]) == []


def test_moving_average_is_centred_and_keeps_the_length():
    values = np.arange(10, dtype=float)
    smoothed = moving_average(values, 3)
    assert smoothed.shape == values.shape
    np.testing.assert_allclose(smoothed[1:-1], values[1:-1])  # a line is its own centred average
    np.testing.assert_allclose(moving_average(values[:2], 3), values[:2])


def test_metrics_writer_draws_curves_png_on_close(tmp_path):
    writer = MetricsWriter(str(tmp_path), "sft")
    for step in range(1, 30):
        writer.write(step, {"loss": 5.0 / step, "learning_rate": 1e-3, "grad_norm": 1.0})
    writer.write(30, {"loss": float("nan")})  # non-finite values are left out of the picture
    writer.close()
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    prefix, series = read_series(str(tmp_path / "metrics.jsonl"))
    assert prefix == "sft" and len(series["loss"][0]) == 29
    # A run that logged none of the panels' metrics gets no picture.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.jsonl").write_text(json.dumps({"step": 1, "x/time/a": 1.0}) + "\n")
    assert write_curves(str(tmp_path / "other" / "metrics.jsonl")) is None


def test_compare_curves_draws_one_curve_per_run(tmp_path, monkeypatch):
    paths = {}
    for arm, rate in (("sparse", 0.2), ("psgpo", 0.3)):
        path = tmp_path / f"{arm}.jsonl"
        path.write_text("".join(json.dumps({"step": i, f"{arm}/rollout/pass_rate": rate + 0.01 * i,
                                            f"{arm}/shape/comment_fraction": 0.0}) + "\n"
                                for i in range(1, 6)))
        paths[arm] = str(path)
    drawn = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((id(self), kwargs.get("label")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    out = compare_curves(paths, str(tmp_path / "arms.png"))
    assert out and (tmp_path / "arms.png").stat().st_size > 5000
    labels = {label for _, label in drawn if label}
    assert labels == {"sparse", "psgpo"}
    # Only the two logged metrics get panels; nothing logged → no picture.
    assert len({axes for axes, _ in drawn}) == 2
    (tmp_path / "empty.jsonl").write_text(json.dumps({"step": 1, "a/time/x": 1.0}) + "\n")
    assert compare_curves({"a": str(tmp_path / "empty.jsonl")}, str(tmp_path / "no.png")) is None


def test_label_cost_accuracy_and_rl_run_discovery(tmp_path):
    accuracy = {"seconds": 1.0, "binary_search": {
        "failing_responses": 10, "rollouts_per_response": 4.7, "first_error_accuracy": 0.56,
        "kappa": 0.19, "chance": {"first_line_first_error_accuracy": 0.52}}}
    assert label_cost_accuracy(accuracy, str(tmp_path / "cost.png"))
    assert (tmp_path / "cost.png").stat().st_size > 5000
    assert label_cost_accuracy({"seconds": 1.0}, str(tmp_path / "none.png")) is None
    for name, files in (("sft", ["metrics.jsonl"]), ("rl", ["metrics.jsonl", "config.json"]),
                        ("sparse_s1", ["metrics.jsonl", "config.json"]), ("prm", ["config.json"])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_text("{}\n")
    assert sorted(rl_run_metrics(str(tmp_path))) == ["rl", "sparse_s1"]
