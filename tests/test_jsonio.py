"""Atomic JSON writes: whole files only, and two writers of one path do not collide."""

import json
import multiprocessing

from prm_jax.jsonio import write_json_atomic


def _write_many(path: str, value: int) -> None:
    for _ in range(60):
        write_json_atomic(path, {"writer": value, "pad": "x" * 4096})


def test_concurrent_writers_of_one_file_never_fail_or_tear(tmp_path):
    path = str(tmp_path / "config.json")
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_write_many, args=(path, v)) for v in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]
    assert json.loads(open(path).read())["writer"] in (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temporary left
