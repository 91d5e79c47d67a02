"""PRM evaluation: per-line accuracy and AUROC, first-error localisation, calibration, baselines.

Conventions: a line score s > 0 predicts "good" (+1); neutral (comment) lines are ignored; the
predicted first error of a response is its first non-neutral line with s < 0 (None if none).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties ½."""
    scores = np.asarray(scores, np.float64)
    positives = np.asarray(positives, bool)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def predicted_first_error(scores: Sequence[float], labels: Sequence[int]) -> int | None:
    for i, (s, y) in enumerate(zip(scores, labels)):
        if y != 0 and s < 0:
            return i
    return None


def expected_calibration_error(probabilities, outcomes, bins: int = 10) -> float:
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(outcomes, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (p >= lo) & ((p < hi) | (hi == 1.0))
        if in_bin.any():
            ece += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    return float(ece)


def line_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[int]], *,
                 probability=lambda s: np.clip((np.asarray(s) + 1) / 2, 0, 1)) -> dict:
    """Metrics over responses: scores[i][j] and labels[i][j] ∈ {+1, 0, −1} for line j."""
    flat_s = [s for ss, ys in zip(scores, labels) for s, y in zip(ss, ys) if y != 0]
    flat_y = [y for ys in labels for y in ys if y != 0]
    positives = np.asarray(flat_y) > 0
    failing = [(ss, ys) for ss, ys in zip(scores, labels) if any(y < 0 for y in ys)]
    hits = [predicted_first_error(ss, ys) == next(j for j, y in enumerate(ys) if y < 0)
            for ss, ys in failing]
    return {
        "lines": len(flat_y),
        "line_accuracy": float(np.mean((np.asarray(flat_s) > 0) == positives)) if flat_y else float("nan"),
        "auroc": auroc(flat_s, positives),
        "first_error_accuracy": float(np.mean(hits)) if hits else float("nan"),
        "failing_responses": len(failing),
        "calibration_ece": expected_calibration_error(probability(flat_s), positives) if flat_y else float("nan"),
    }


def baseline_metrics(labels: Sequence[Sequence[int]], train_labels: Sequence[Sequence[int]]) -> dict:
    """Trivial predictors for comparison: the training majority label (a constant), and a
    position-only score fitted on the training labels (P(good) per relative position decile)."""
    train_flat = [y for ys in train_labels for y in ys if y != 0]
    majority = 1.0 if np.mean(np.asarray(train_flat) > 0) >= 0.5 else -1.0
    constant = [[majority] * len(ys) for ys in labels]
    table = np.full(10, 0.0)
    counts = np.zeros(10)
    for ys in train_labels:
        for j, y in enumerate(ys):
            if y != 0:
                b = min(9, int(10 * j / max(len(ys), 1)))
                table[b] += y
                counts[b] += 1
    table = np.where(counts > 0, table / np.maximum(counts, 1), 0.0)
    position = [[table[min(9, int(10 * j / max(len(ys), 1)))] for j in range(len(ys))] for ys in labels]
    return {"majority": line_metrics(constant, labels), "position": line_metrics(position, labels)}


def pair_accuracy(right: Sequence[float], wrong: Sequence[float]) -> float:
    """P(score of the wrong line < score of the right line), ties ½ (the counterfactual probe)."""
    right, wrong = np.asarray(right, np.float64), np.asarray(wrong, np.float64)
    if len(right) == 0:
        return float("nan")
    return float(np.mean((wrong < right) + 0.5 * (wrong == right)))


def position_scores(labels: Sequence[Sequence[int]]) -> list[list[float]]:
    """Baseline: each line scored by the mean label of lines at the same (line count, index),
    fitted in-sample — the best any position-only scorer can do on these labels."""
    table: dict[tuple[int, int], list[int]] = {}
    for ys in labels:
        for j, y in enumerate(ys):
            if y != 0:
                table.setdefault((len(ys), j), []).append(y)
    return [[float(np.mean(table.get((len(ys), j), [0]))) for j in range(len(ys))] for ys in labels]


def task_mean_scores(labels: Sequence[Sequence[int]], task_ids: Sequence[str]) -> list[list[float]]:
    """Baseline: every line scored by the mean label of its task's lines (in-sample) — task
    difficulty alone, with no information about which line is wrong."""
    by_task: dict[str, list[int]] = {}
    for ys, t in zip(labels, task_ids):
        by_task.setdefault(t, []).extend(y for y in ys if y != 0)
    return [[float(np.mean(by_task[t] or [0]))] * len(ys) for ys, t in zip(labels, task_ids)]


def failing_line_report(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[int]],
                        passed: Sequence[bool], horizons: Sequence[int],
                        task_ids: Sequence[str]) -> dict:
    """Line metrics of a scorer against ground-truth labels, where they measure line correctness:

    * `failing`: lines of failing responses only (response-level separation cannot help);
    * `by_horizon`: the same per task horizon H;
    * `mixed`: all responses' lines (secondary: passing responses make it a response-level
      figure);
    each for the scorer and the in-sample baselines `position` and `task_mean`."""
    scorers = {"scorer": [list(s) for s in scores], "position": position_scores(labels),
               "task_mean": task_mean_scores(labels, task_ids)}
    failing = [i for i, p in enumerate(passed) if not p]

    def subset(index):
        return {name: line_metrics([s[i] for i in index], [labels[i] for i in index])
                for name, s in scorers.items()}

    by_h = {}
    for h in sorted(set(horizons)):
        index = [i for i in failing if horizons[i] == h]
        if index:
            by_h[str(h)] = dict(subset(index), responses=len(index))
    return {"responses": len(labels), "failing_responses": len(failing),
            "failing": subset(failing), "by_horizon": by_h,
            "mixed": subset(range(len(labels)))}
