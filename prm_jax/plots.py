"""Training curves as a PNG, drawn from a run's `metrics.jsonl` (matplotlib, headless).

Every training run (SFT, PRM training, each RL run) writes `curves.png` next to its
`metrics.jsonl` when it finishes: one panel per metric that the run logged, in the order of
`PANELS` (metric name after the run prefix, panel title), each curve with its raw points and,
for noisy per-iteration metrics, a moving average.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

# (metric name after the run's prefix, title) in display order; absent metrics are skipped.
PANELS: tuple[tuple[str, str], ...] = (
    ("loss", "training loss"),
    ("eval/pass@1", "held-out greedy pass@1"),
    ("rollout/pass_rate", "rollout pass rate"),
    ("reward/total_mean", "mean reward per response"),
    ("reward/dense_sum_failing", "dense PRM reward, failing responses"),
    ("kl/k1", "KL to the reference (k1)"),
    ("critic/explained_variance", "critic explained variance"),
    ("policy/entropy", "policy entropy (nats/token)"),
    ("shape/comment_fraction", "comment-line fraction"),
    ("shape/duplicate_line_fraction", "duplicate-line fraction"),
    ("line_accuracy", "line sign accuracy"),
    ("pair_accuracy", "pair accuracy (right > wrong line)"),
    ("learning_rate", "learning rate"),
)
MAX_PANELS = 9


def read_series(metrics_path: str) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(run prefix, {metric name without prefix: (steps, values)}) from a metrics.jsonl."""
    series: dict[str, tuple[list, list]] = {}
    prefix = ""
    with open(metrics_path) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            for key, value in row.items():
                if key == "step" or "/" not in key:
                    continue
                prefix, name = key.split("/", 1)
                if value is None or not np.isfinite(value):
                    continue
                steps, values = series.setdefault(name, ([], []))
                steps.append(row["step"])
                values.append(value)
    return prefix, {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in series.items()}


def chosen_panels(names: Sequence[str]) -> list[tuple[str, str]]:
    """The panels to draw for a run that logged `names` (at most MAX_PANELS)."""
    present = set(names)
    return [(name, title) for name, title in PANELS if name in present][:MAX_PANELS]


# Smooth by construction: drawn as a line, without a moving average.
SMOOTH = frozenset({"learning_rate"})


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of the same length (edges padded with the end values)."""
    if len(values) < window:
        return values
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (no display on training hosts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel_grid(n: int):
    """A figure with `n` panels, three per row: (pyplot, figure, flat list of n axes); the
    unused axes of the last row are switched off."""
    plt = pyplot()
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return plt, fig, list(axes.flat)[:n]


def _style(ax, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_xlabel(xlabel, fontsize=7)


def write_curves(metrics_path: str, out_path: str | None = None) -> str | None:
    """Draws the run's curves into `out_path` (default: curves.png beside the metrics);
    returns the path, or None when the run logged none of the panels' metrics."""
    prefix, series = read_series(metrics_path)
    panels = chosen_panels(list(series))
    if not panels:
        return None
    plt, fig, axes = _panel_grid(len(panels))
    out_path = out_path or os.path.join(os.path.dirname(metrics_path), "curves.png")
    for ax, (name, title) in zip(axes, panels):
        steps, values = series[name]
        noisy = len(steps) > 12 and name not in SMOOTH
        ax.plot(steps, values, ".", ms=3, color="tab:blue", alpha=0.45 if noisy else 1.0)
        if noisy:
            ax.plot(steps, moving_average(values, max(3, len(steps) // 15)), color="tab:blue", lw=1.6)
        elif len(steps) > 1:
            ax.plot(steps, values, color="tab:blue", lw=1.2)
        _style(ax, title, "step" if name == "loss" or prefix in ("sft", "prm_training") else "iteration")
    fig.suptitle(f"{prefix}: {os.path.dirname(os.path.abspath(metrics_path))}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


# Panels of `compare_curves` for RL arms: learning, reward and the reward-hacking indicators.
RL_COMPARISON: tuple[tuple[str, str], ...] = (
    ("eval/pass@1", "held-out greedy pass@1"),
    ("rollout/pass_rate", "rollout pass rate"),
    ("reward/dense_sum_failing", "dense PRM reward, failing responses"),
    ("kl/k1", "KL to the reference (k1)"),
    ("policy/entropy", "policy entropy (nats/token)"),
    ("shape/code_lines", "code lines per response"),
    ("shape/comment_fraction", "comment-line fraction"),
    ("shape/duplicate_line_fraction", "duplicate-line fraction"),
    ("rollout/response_tokens", "response tokens"),
)


def compare_curves(metrics_paths: dict[str, str], out_path: str,
                   panels: Sequence[tuple[str, str]] = RL_COMPARISON) -> str | None:
    """One panel per metric with one curve per run (`{label: metrics.jsonl}`), e.g. RL arms on
    one workdir; panels no run logged are skipped. Returns the path, or None if nothing to draw."""
    runs = {label: read_series(path)[1] for label, path in metrics_paths.items()}
    panels = [(n, t) for n, t in panels if any(n in s for s in runs.values())]
    if not panels:
        return None
    plt, fig, axes = _panel_grid(len(panels))
    for ax, (name, title) in zip(axes, panels):
        for i, (label, series) in enumerate(runs.items()):
            if name not in series:
                continue
            steps, values = series[name]
            colour = f"C{i % 10}"
            smooth = len(steps) > 12
            ax.plot(steps, values, ".", ms=3, color=colour, alpha=0.4 if smooth else 1.0)
            ax.plot(steps, moving_average(values, max(3, len(steps) // 15)) if smooth else values,
                    color=colour, lw=1.4, label=label)
        _style(ax, title, "iteration")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def label_cost_accuracy(accuracy: dict, out_path: str) -> str | None:
    """Labelling cost vs accuracy against ground truth: one point per labelling method
    (`summary["label"]["accuracy"]`: rollouts per response, first-error accuracy, κ), with each
    method's trivial baseline (line-0 guess; κ = 0 for a constant labeller) as a hollow marker.
    Returns the path, or None when no method was measured."""
    methods = {m: a for m, a in accuracy.items() if isinstance(a, dict) and "kappa" in a}
    if not methods:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, (method, a) in enumerate(sorted(methods.items())):
        x, colour = a["rollouts_per_response"], f"C{i % 10}"
        label = f"{method} ({a['failing_responses']} failing responses)"
        axes[0].plot([x], [a["first_error_accuracy"]], "o", color=colour, ms=7, label=label)
        axes[0].plot([x], [a["chance"]["first_line_first_error_accuracy"]], "o", mfc="none",
                     color=colour, ms=7)
        axes[1].plot([x], [a["kappa"]], "o", color=colour, ms=7)
    axes[1].axhline(0.0, color="grey", ls="--", lw=1)
    axes[0].set_title("first-error accuracy vs ground truth\n(hollow: line-0 guess)", fontsize=9)
    axes[1].set_title("Cohen's κ of line labels vs ground truth\n(dashed: constant labeller)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("policy rollouts per failing response", fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def rl_run_metrics(workdir: str) -> dict[str, str]:
    """{run name: metrics.jsonl} of the RL runs in a workdir (folders with an RL config.json)."""
    out = {}
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(
                os.path.join(path, "metrics.jsonl")):
            out[name] = os.path.join(path, "metrics.jsonl")
    return out
