"""The layout of a run's workdir: the one place that names its files and folders.

  config.json              the resolved, validated config of the run (absolute paths)
  summary.json             one entry per stage that has run, merged across invocations
  policy/, policy_step<N>/ SFT policy and snapshots (HF checkpoints + tokenizer)
  policy_<run>/, policy_<run>_it<N>/
                           an RL run's final policy and its snapshots
  responses.jsonl          sampled responses with their test verdicts
  labels_<method>.jsonl    line labels: binary_search, monte_carlo, mutation
  prm/                     the PRM (HF *ForTokenClassification checkpoint)
  <run>/                   a training run (sft, prm_training): checkpoints/, metrics.jsonl, tb/,
                           result.json (its final figures, reused when a finished run is resumed)
  prm_lines.png, .html     a held-out failing response: PRM line scores beside its labels
  label_accuracy.png       labelling cost vs accuracy against ground truth, per method
  rl_runs.png              every RL run's curves on one set of axes
"""

from __future__ import annotations

import os
import time


class Workdir:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def config(self) -> str:
        return self.path("config.json")

    @property
    def summary(self) -> str:
        return self.path("summary.json")

    @property
    def policy(self) -> str:
        return self.path("policy")

    def snapshot(self, step: int) -> str:
        return self.path(f"policy_step{step}")

    @property
    def responses(self) -> str:
        return self.path("responses.jsonl")

    def labels(self, method: str) -> str:
        return self.path(f"labels_{method}.jsonl")

    @property
    def prm(self) -> str:
        return self.path("prm")

    def run_dir(self, name: str) -> str:
        return self.path(name)

    def run_policy(self, name: str, iteration: int | None = None) -> str:
        """An RL run's exported policy: final, or its snapshot at `iteration`."""
        return self.path(f"policy_{name}" + ("" if iteration is None else f"_it{iteration}"))


def is_done(path: str) -> bool:
    """A directory written completely (a `DONE` marker is its last file)."""
    return os.path.exists(os.path.join(path, "DONE"))


def mark_done(path: str) -> None:
    with open(os.path.join(path, "DONE"), "w") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%S"))


def clear_done(path: str) -> None:
    """Removes the `DONE` marker before `path` is rewritten (a rewrite cut short is then not
    taken for complete)."""
    try:
        os.remove(os.path.join(path, "DONE"))
    except FileNotFoundError:
        pass
