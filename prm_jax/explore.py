"""Opening a finished workdir from Python or a notebook: its configs, a run to look at, the
headline figures beside their trivial baselines, and label statistics.

    from prm_jax import explore
    workdir = explore.ensure_run()            # runs/default, or a shrunk pipeline if none exists
    explore.print_table(explore.headline(explore.summary(workdir)))
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
from typing import Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO_ROOT / "runs" / "default"
SMALL_WORKDIR = REPO_ROOT / "runs" / "small"


def load_config(name: str, arg: str | None = None):
    """`get_config(arg)` of configs/<name>.py (or of the file `name`), as the launcher would."""
    path = pathlib.Path(name) if name.endswith(".py") else REPO_ROOT / "configs" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"prm_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config() if arg is None else module.get_config(arg)


# Stages whose results the notebooks open (RL runs are optional: they are named runs).
PIPELINE_STAGES = ("sft", "sample", "label", "prm_train", "prm_eval")


def ensure_run(workdir: str | os.PathLike | None = None) -> pathlib.Path:
    """A workdir holding a finished pipeline (`PIPELINE_STAGES` in its summary): `workdir`,
    else $PRM_JAX_WORKDIR, else runs/default if finished, else runs/small — made (or finished)
    now with configs/small.py (about a minute on a CPU; its figures mean nothing)."""
    chosen = workdir or os.environ.get("PRM_JAX_WORKDIR")
    if chosen:
        path = pathlib.Path(chosen).expanduser().resolve()
        missing = _missing_stages(path)
        if missing:
            raise FileNotFoundError(f"{path} holds no finished pipeline (no results of {missing})")
        return path
    if not _missing_stages(DEFAULT_WORKDIR):
        return DEFAULT_WORKDIR
    if _missing_stages(SMALL_WORKDIR):
        from prm_jax import run

        print(f"no finished run found: running the shrunk pipeline (configs/small.py) into {SMALL_WORKDIR}")
        run.run(load_config("small"), str(SMALL_WORKDIR))
    return SMALL_WORKDIR


def _missing_stages(path: pathlib.Path) -> list[str]:
    if not (path / "summary.json").is_file():
        return list(PIPELINE_STAGES)
    done = summary(path)
    return [stage for stage in PIPELINE_STAGES if stage not in done]


def summary(workdir) -> dict:
    with open(pathlib.Path(workdir) / "summary.json") as f:
        return json.load(f)


def _get(tree: dict, *keys, default=None):
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree


def headline(s: dict) -> list[tuple[str, str, str]]:
    """(figure, value, what a trivial baseline scores) for the figures a run reports."""
    rows = []

    def add(name, value, baseline=""):
        if value is not None:
            rows.append((name, f"{value:.3f}" if isinstance(value, float) else str(value), baseline))

    add("SFT held-out greedy pass@1", _get(s, "sft", "test", "pass@1"))
    for run in ("rl_baseline", "rl"):
        add(f"{run}: held-out greedy pass@1", _get(s, run, "test", "pass@1"),
            f"SFT policy {_get(s, run, 'test_before', 'pass@1', default=float('nan')):.3f}")
    probe = _get(s, "prm_eval", "probe") or {}
    add("PRM probe: wrong line below the right one", probe.get("pair_accuracy"),
        "0.5 (any scorer of task + position)")
    add("PRM probe: line AUROC right vs wrong", probe.get("pair_auroc"), "0.5")
    failing = _get(s, "prm_eval", "responses", "failing") or {}
    if failing:
        add("PRM: line AUROC among failing responses' lines", _get(failing, "scorer", "auroc"),
            f"position table {_get(failing, 'position', 'auroc', default=float('nan')):.3f}")
        add("PRM: first-error accuracy", _get(failing, "scorer", "first_error_accuracy"),
            f"position table {_get(failing, 'position', 'first_error_accuracy', default=float('nan')):.3f}")
    for method, a in (_get(s, "label", "accuracy") or {}).items():
        if isinstance(a, dict) and "kappa" in a:
            add(f"labels ({method}): first-error accuracy vs ground truth",
                a["first_error_accuracy"],
                f"line-0 guess {a['chance']['first_line_first_error_accuracy']:.3f}")
            add(f"labels ({method}): Cohen's κ vs ground truth", a["kappa"], "0 (constant labeller)")
    return rows


def label_counts(workdir) -> list[tuple[str, int, int, int, int]]:
    """(label file, responses, +1 lines, 0 lines, −1 lines) for each labels_*.jsonl."""
    from prm_jax.prm.label import read_labels

    out = []
    for path in sorted(pathlib.Path(workdir).glob("labels_*.jsonl")):
        rows = read_labels(str(path))
        labels = [l["label"] for r in rows for l in r["lines"]]
        out.append((path.stem.removeprefix("labels_"), len(rows), labels.count(1), labels.count(0),
                    labels.count(-1)))
    return out


def print_table(rows: Sequence[Sequence], header: Sequence[str] = ("figure", "value", "baseline")) -> None:
    """Rows as an aligned text table."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
