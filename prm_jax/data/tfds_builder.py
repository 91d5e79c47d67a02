"""TFDS builder (array_record, no TensorFlow): prepare a problem set once into a data directory.

    from prm_jax.data import tfds_builder
    path = tfds_builder.build({"train": train_problems, "test": test_problems},
                              name="synthetic_h8", data_dir="/data/tfds")
    source = tfds_builder.data_source(path, "train")       # random access, for grain
    problem = tfds_builder.record_to_problem(source[0])

Every Problem field is stored (tests, meta as JSON text), so a build → read round trip returns
equal Problems. `python -m prm_jax.data.tfds_builder --dataset mbpp --problems mbpp.jsonl
--name mbpp --data_dir DIR` prepares a source from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Mapping, Sequence

import tensorflow_datasets as tfds

from prm_jax.data.problem import Problem

VERSION = "1.0.0"
_TEXT_FIELDS = ("task_id", "prompt", "entry_point", "test_kind", "tests", "setup", "reference",
                "assembly", "source", "meta")


def problem_to_record(problem: Problem) -> dict[str, str]:
    """All fields as text (tests/meta as JSON; entry_point None as "")."""
    d = problem.to_dict()
    return {
        "task_id": d["task_id"], "prompt": d["prompt"], "entry_point": d["entry_point"] or "",
        "test_kind": d["test_kind"], "tests": json.dumps(d["tests"]), "setup": d["setup"],
        "reference": d["reference"], "assembly": d["assembly"], "source": d["source"],
        "meta": json.dumps(d["meta"], sort_keys=True),
    }


def record_to_problem(record: Mapping) -> Problem:
    def text(name):
        value = record[name]
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    return Problem(
        task_id=text("task_id"), prompt=text("prompt"), entry_point=text("entry_point") or None,
        test_kind=text("test_kind"), tests=tuple(
            tuple(t) if isinstance(t, list) else t for t in json.loads(text("tests"))),
        setup=text("setup"), reference=text("reference"), assembly=text("assembly"),
        source=text("source"), meta=json.loads(text("meta")))


class PrmJaxProblems(tfds.core.GeneratorBasedBuilder):
    """Problems with unit tests; one builder config per prepared problem set."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, splits: Mapping[str, Sequence[Problem]] | None = None, **kwargs):
        self._splits = splits
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({name: tfds.features.Text() for name in _TEXT_FIELDS}),
            description="prm-jax problems with unit tests")

    def _split_generators(self, dl_manager):
        if not self._splits:
            raise ValueError("PrmJaxProblems needs `splits` (problems per split) to prepare")
        return {name: self._generate_examples(problems) for name, problems in self._splits.items()}

    def _generate_examples(self, problems):
        for problem in problems:
            yield problem.task_id, problem_to_record(problem)


def build(splits: Mapping[str, Sequence[Problem]], *, name: str, data_dir: str) -> str:
    """Prepares `splits` as config `name` under `data_dir` (once); returns the dataset dir."""
    for split, problems in splits.items():
        ids = [p.task_id for p in problems]
        if len(set(ids)) != len(ids):
            raise ValueError(f"split {split!r} has duplicate task_ids")
    config = tfds.core.BuilderConfig(name=name, version=VERSION)
    builder = PrmJaxProblems(splits=splits, config=config, data_dir=data_dir,
                             file_format="array_record")
    builder.download_and_prepare()
    return builder.data_dir


def data_source(dataset_dir: str, split: str):
    """Random-access source over a prepared split (records are dicts of bytes)."""
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"prepared dataset {dataset_dir} does not exist")
    builder = tfds.builder_from_directory(dataset_dir)
    if split not in builder.info.splits:
        raise KeyError(f"split {split!r} not in {dataset_dir}; available: {sorted(builder.info.splits)}")
    return builder.as_data_source(split=split)


def main():
    from prm_jax.data import sources

    parser = argparse.ArgumentParser(description="Prepare a problem set as a TFDS dataset.")
    parser.add_argument("--dataset", required=True, choices=sources.DATASETS)
    parser.add_argument("--problems", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--name", required=True)
    parser.add_argument("--data_dir", required=True)
    args = parser.parse_args()
    problems, report = sources.load(args.dataset, args.problems)
    path = build({args.split: problems}, name=args.name, data_dir=args.data_dir)
    print(f"{report.summary()} → {path}")


if __name__ == "__main__":
    main()
