"""Label accuracy against ground truth (pure functions over label rows and `ground_truth.Truth`).

Only failing responses count: every method labels a passing response all +1 at no cost, so
including them would only inflate every figure. Comment lines (0 in both) are left out.

* first-error accuracy: P(method's first error == true first error) over failing responses;
* line accuracy: P(method's line label == true line label) over step lines;
* Cohen's κ = (p_o − p_e) / (1 − p_e), with p_e = Σ_c p_method(c)·p_truth(c): agreement beyond
  what labellers with the same marginals but no information would reach (κ = 0 for a constant
  labeller, however accurate);
* chance levels beside them: a constant −1 labeller's line accuracy (the majority class of
  failing responses), and "first error = line 0"'s first-error accuracy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """κ between two label sequences (nan if empty; 0 when p_e = 1, i.e. both constant)."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0:
        return float("nan")
    classes = np.union1d(a, b)
    p_o = float(np.mean(a == b))
    p_e = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
    return 0.0 if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


def _first_step(labels: Sequence[int]) -> int | None:
    return next((i for i, y in enumerate(labels) if y != 0), None)


def label_accuracy(rows: Sequence[dict], truths: Sequence) -> dict:
    """Agreement of label rows with their ground truth (same order; masked truths skipped)."""
    pred, true, hits, first_line_hits, rollouts, responses = [], [], [], [], [], 0
    for row, truth in zip(rows, truths):
        if truth.masked or truth.passed or row.get("masked"):
            continue
        labels = [l["label"] for l in row["lines"]]
        if len(labels) != len(truth.labels):
            raise ValueError(f"{row['response_id']}: {len(labels)} labels, {len(truth.labels)} true")
        responses += 1
        rollouts.append(row.get("rollouts", 0))
        hits.append(row["first_error_line"] == truth.first_error)
        first_line_hits.append(truth.first_error == _first_step(truth.labels))
        for y, t in zip(labels, truth.labels):
            if t != 0:
                pred.append(y)
                true.append(t)
    true_arr = np.asarray(true)
    return {
        "failing_responses": responses,
        "lines": len(true),
        "first_error_accuracy": float(np.mean(hits)) if hits else float("nan"),
        "line_accuracy": float(np.mean(np.asarray(pred) == true_arr)) if true else float("nan"),
        "kappa": cohen_kappa(pred, true),
        "rollouts_per_response": float(np.mean(rollouts)) if rollouts else float("nan"),
        "true_negative_fraction": float(np.mean(true_arr < 0)) if true else float("nan"),
        "chance": {
            "constant_bad_line_accuracy": float(np.mean(true_arr < 0)) if true else float("nan"),
            "first_line_first_error_accuracy": float(np.mean(first_line_hits)) if hits else float("nan"),
            "kappa": 0.0,
        },
    }
