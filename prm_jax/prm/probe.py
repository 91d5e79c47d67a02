"""The counterfactual probe: does a line scorer tell a wrong line from the right one?

For every synthetic task and every step position i, two programs that differ only in line i:
the reference (with its comment lines, if any) and the reference with step i replaced by a
wrong step — a changed constant (same operation, another k) or a changed operation — chosen so
that the prefix through it is unrecoverable (no suffix of the reference steps reaches the
expected outputs; checked with the trusted step interpreter, `synthetic.run_steps`). A causal
scorer's value at line i depends only on the prompt and lines ≤ i, so the pair isolates line i.

* pair accuracy = P(score(wrong line) < score(right line)), ties ½ — 0.5 for any scorer that
  sees only the task and the position (the position table, the per-task mean);
* pair AUROC: right lines vs wrong lines at the changed positions;
* program AUROC: every step line of both programs, labelled +1 (reference lines and lines
  before the change) or −1 (the changed line and after);
* comment lines of references: their mean score and mean |score| (the target is 0).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib
from prm_jax.data import synthetic
from prm_jax.data.problem import Problem
from prm_jax.prm import metrics


@dataclasses.dataclass(frozen=True)
class Pair:
    task_id: str
    prompt: str
    horizon: int
    step: int  # the changed step (0-based)
    line: int  # its non-blank line index in both programs
    kind: str  # "constant" | "operation"
    right: str
    wrong: str


def unrecoverable(steps: Sequence[synthetic.Step], i: int, wrong: synthetic.Step, inputs) -> bool:
    """No suffix j..H−1 of the reference steps maps the state after steps[:i] + [wrong] to the
    expected outputs on every input."""
    expected = [synthetic.run_steps(steps, xs) for xs in inputs]
    states = [synthetic.run_steps(list(steps[:i]) + [wrong], xs) for xs in inputs]
    return not any(all(synthetic.run_steps(steps[j:], s) == e for s, e in zip(states, expected))
                   for j in range(len(steps) + 1))


def _candidates(step: synthetic.Step, kind: str) -> list[synthetic.Step]:
    if kind == "constant":
        lo, hi = synthetic.OPS[step.kind].k_range or (0, -1)
        return [synthetic.Step(step.kind, k) for k in range(lo, hi + 1) if k != step.k]
    out = []
    for name in synthetic.KINDS:
        if name == step.kind:
            continue
        lo, hi = synthetic.OPS[name].k_range or (0, 0)
        out += [synthetic.Step(name, k) for k in range(lo, hi + 1)]
    return out


def wrong_step(steps, i, inputs, rng, kind: str) -> synthetic.Step | None:
    """A random unrecoverable replacement of step i of `kind`, or None if there is none."""
    options = _candidates(steps[i], kind)
    for index in rng.permutation(len(options)):
        if unrecoverable(steps, i, options[index], inputs):
            return options[index]
    return None


def _replace_line(text: str, line: lines_lib.Line, new: str) -> str:
    return text[: line.start] + new + text[line.end:]


def make_pairs(problems: Sequence[Problem], *, seed: int = 0, min_horizon: int = 2) -> list[Pair]:
    """One pair per step position of every task with H ≥ min_horizon; the wrong step's kind
    alternates between "constant" (where the operation has one) and "operation"."""
    rng = np.random.default_rng([seed, 6007])
    pairs = []
    for p in problems:
        steps = synthetic.steps_of(p)
        if len(steps) < min_horizon:
            continue
        step_lines = [l for l in lines_lib.split_lines(p.reference) if not l.is_comment]
        for i, line in enumerate(step_lines):
            kinds = ["constant", "operation"] if (i + len(pairs)) % 2 == 0 else ["operation", "constant"]
            for kind in kinds:
                wrong = wrong_step(steps, i, p.meta["inputs"], rng, kind)
                if wrong is not None:
                    break
            if wrong is None:
                continue
            text = f"    xs = {wrong.expr()}" if i < len(steps) - 1 else f"    return {wrong.expr()}"
            pairs.append(Pair(p.task_id, p.prompt, len(steps), i, line.step, kind, p.reference,
                              _replace_line(p.reference, line, text)))
    return pairs


def _step_labels(response: str, first_error: int | None) -> list[int]:
    from prm_jax.prm.rows import line_labels

    return [l["label"] for l in line_labels(lines_lib.split_lines(response), first_error)]


def probe_metrics(pairs: Sequence[Pair], right_scores: Sequence[Sequence[float]],
                  wrong_scores: Sequence[Sequence[float]]) -> dict:
    """Probe figures from per-line scores of each pair's right and wrong program."""
    r = [s[p.line] for p, s in zip(pairs, right_scores)]
    w = [s[p.line] for p, s in zip(pairs, wrong_scores)]

    def part(index):
        index = list(index)
        return {"pairs": len(index),
                "pair_accuracy": metrics.pair_accuracy([r[i] for i in index], [w[i] for i in index]),
                "pair_auroc": metrics.auroc([r[i] for i in index] + [w[i] for i in index],
                                            [True] * len(index) + [False] * len(index))}

    out = part(range(len(pairs)))
    out["by_horizon"] = {str(h): part(i for i, p in enumerate(pairs) if p.horizon == h)
                         for h in sorted({p.horizon for p in pairs})}
    out["by_kind"] = {k: part(i for i, p in enumerate(pairs) if p.kind == k)
                      for k in sorted({p.kind for p in pairs})}
    # Program AUROC over all step lines; each distinct reference counted once.
    seen, scores, labels = set(), [], []
    for p, rs, ws in zip(pairs, right_scores, wrong_scores):
        if p.task_id not in seen:
            seen.add(p.task_id)
            scores.append(list(rs))
            labels.append(_step_labels(p.right, None))
        scores.append(list(ws))
        labels.append(_step_labels(p.wrong, p.line))
    flat = [(s, y) for ss, ys in zip(scores, labels) for s, y in zip(ss, ys) if y != 0]
    out["program_auroc"] = metrics.auroc([s for s, _ in flat], [y > 0 for _, y in flat])
    position = metrics.position_scores(labels)
    flat_pos = [s for ss, ys in zip(position, labels) for s, y in zip(ss, ys) if y != 0]
    out["baselines"] = {"position": {"pair_accuracy": 0.5, "program_auroc": metrics.auroc(
        flat_pos, [y > 0 for _, y in flat])}, "task_mean": {"pair_accuracy": 0.5}}
    # Reference programs: mean score of their step lines by horizon, and of their comment lines.
    refs = {p.task_id: (p, rs) for p, rs in zip(pairs, right_scores)}
    by_h: dict[int, list[float]] = {}
    comments = []
    for p, rs in refs.values():
        for line, s in zip(lines_lib.split_lines(p.right), rs):
            (comments if line.is_comment else by_h.setdefault(p.horizon, [])).append(s)
    out["reference_mean_score"] = {str(h): float(np.mean(v)) for h, v in sorted(by_h.items())}
    out["comment_lines"] = {"lines": len(comments),
                            "mean_score": float(np.mean(comments)) if comments else float("nan"),
                            "mean_abs_score": float(np.mean(np.abs(comments))) if comments else float("nan")}
    return out
