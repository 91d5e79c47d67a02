"""Atomic JSON writes: whole files only, and two writers of one path do not collide."""

import json
import multiprocessing

from prm_jax.jsonio import write_json_atomic


def _run_two_writers(target, path: str) -> None:
    """Runs target(path, 1) and target(path, 2) in two processes at once; both must succeed."""
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=target, args=(path, v)) for v in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]


def _write_many(path: str, value: int) -> None:
    for _ in range(60):
        write_json_atomic(path, {"writer": value, "pad": "x" * 4096})


def test_concurrent_writers_of_one_file_never_fail_or_tear(tmp_path):
    path = str(tmp_path / "config.json")
    _run_two_writers(_write_many, path)
    assert json.loads(open(path).read())["writer"] in (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temporary left


def _merge_many(path: str, writer: int) -> None:
    from prm_jax.jsonio import merge_json_atomic

    for i in range(40):
        merge_json_atomic(path, {f"run_{writer}_{i}": {"writer": writer, "pad": "x" * 2048}})


def test_concurrent_merges_keep_every_entry(tmp_path):
    """Two runs finishing stages in one workdir merge into summary.json: no entry is lost (a
    read-modify-write without the lock drops the other writer's entries)."""
    path = str(tmp_path / "summary.json")
    write_json_atomic(path, {"sft": {"steps": 1}})
    _run_two_writers(_merge_many, path)
    merged = json.loads(open(path).read())
    assert set(merged) == {"sft"} | {f"run_{w}_{i}" for w in (1, 2) for i in range(40)}
