"""Training-curve pictures: which panels a run gets, the smoothing, and the file itself."""

import json

import numpy as np

from prm_jax.plots import chosen_panels, moving_average, read_series, write_curves
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
