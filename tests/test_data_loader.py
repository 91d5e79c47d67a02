"""TFDS build → grain read round-trips every field; iterators restore exactly; shards are disjoint."""

import pytest

from prm_jax.data import synthetic
from prm_jax.data.loader import problem_loader
from prm_jax.data.problem import Problem
from prm_jax.data.sources import load_io, load_mbpp
from prm_jax.data.tfds_builder import build, data_source, problem_to_record, record_to_problem

FIXTURES = __file__.rsplit("/", 1)[0] + "/fixtures"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    train = synthetic.generate(synthetic.SyntheticConfig(num_problems=40, max_horizon=5))
    mixed = load_mbpp(f"{FIXTURES}/mbpp_sample.jsonl")[0] + load_io(f"{FIXTURES}/io_sample.jsonl")[0]
    mixed.append(Problem(task_id="unicode ✓", prompt="def f():\n    \"\"\"ünïcode\"\"\"\n",
                         entry_point="f", test_kind="assert", tests=("assert f() == 'é'",),
                         meta={"nested": {"a": [1, 2]}, "none": None}))
    path = build({"train": train, "test": mixed}, name="fixture_problems",
                 data_dir=str(tmp_path_factory.mktemp("tfds")))
    return path, train, mixed


def test_round_trip_of_every_field(prepared):
    path, train, mixed = prepared
    for split, problems in (("train", train), ("test", mixed)):
        source = data_source(path, split)
        assert len(source) == len(problems)
        back = {p.task_id: p for p in (record_to_problem(source[i]) for i in range(len(source)))}
        assert back == {p.task_id: p for p in problems}
    assert record_to_problem(problem_to_record(mixed[-1])) == mixed[-1]


def test_restored_iterator_continues_exactly(prepared):
    path, train, _ = prepared
    loader = problem_loader(data_source(path, "train"), batch_size=6, seed=3, shard_index=0,
                            shard_count=1)
    it = iter(loader)
    for _ in range(9):  # crosses an epoch boundary (40 records, 6 per batch)
        next(it)
    state = it.get_state()
    expected = [[p.task_id for p in next(it)] for _ in range(5)]
    resumed = iter(problem_loader(data_source(path, "train"), batch_size=6, seed=3, shard_index=0,
                                  shard_count=1))
    resumed.set_state(state)
    assert [[p.task_id for p in next(resumed)] for _ in range(5)] == expected
    assert all(isinstance(p, Problem) for p in next(resumed))


def test_epochs_are_reshuffled_and_complete(prepared):
    path, train, _ = prepared
    loader = problem_loader(data_source(path, "train"), batch_size=8, seed=1, num_epochs=2,
                            shard_index=0, shard_count=1)
    ids = [p.task_id for batch in loader for p in batch]
    assert len(ids) == 80
    first, second = ids[:40], ids[40:]
    assert sorted(first) == sorted(p.task_id for p in train) == sorted(second)
    assert first != second


def test_two_processes_see_disjoint_shards(prepared):
    path, train, _ = prepared
    seen = []
    for index in range(2):
        loader = problem_loader(data_source(path, "train"), batch_size=5, seed=0, num_epochs=1,
                                shard_index=index, shard_count=2)
        seen.append({p.task_id for batch in loader for p in batch})
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 40


def test_errors(prepared, tmp_path):
    path, _, _ = prepared
    with pytest.raises(KeyError, match="split 'validation' not in"):
        data_source(path, "validation")
    with pytest.raises(FileNotFoundError):
        data_source(str(tmp_path / "missing"), "train")
    with pytest.raises(ValueError, match="shard_index 2 is not in"):
        problem_loader(data_source(path, "train"), batch_size=2, shard_index=2, shard_count=2)
