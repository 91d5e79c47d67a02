"""`python -m prm_jax.sandbox --in runs.jsonl --out results.jsonl`."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "prm_jax.sandbox", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_cli_evaluates_assert_and_io_rows(tmp_path):
    rows = [
        {"id": "ok", "program": "def f(x):\n    return x * 2\n", "tests": ["assert f(2) == 4"]},
        {"id": "wrong", "program": "def f(x):\n    return x\n", "tests": ["assert f(2) == 4",
                                                                        "assert f(0) == 0"]},
        {"id": "setup", "program": "def f(x):\n    return x + K\n", "setup": "K = 1",
         "tests": ["assert f(1) == 2"]},
        {"id": "io_ok", "program": "a, b = map(int, input().split())\nprint(a + b)\n",
         "io": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5", "output": "10"}]},
        {"id": "io_wrong", "program": "print(1)", "io": [{"input": "", "output": "2"}]},
        # Never reaches its (trivially true) test: the timeout alone decides.
        {"id": "slow", "program": "while True:\n    pass\n", "tests": ["assert True"], "timeout_s": 1},
    ]
    _write(tmp_path / "runs.jsonl", rows)
    proc = _cli("--in", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "out.jsonl"),
                "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    status = {r["id"]: r["status"] for r in out}
    assert status == {"ok": "passed", "wrong": "failed", "setup": "passed", "io_ok": "passed",
                      "io_wrong": "failed", "slow": "timeout"}
    wrong = out[1]
    assert [t["passed"] for t in wrong["tests"]] == [False, True]
    assert "assert f(2) == 4" in wrong["tests"][0]["message"]
    assert "6 programs" in proc.stderr and "isolation" in proc.stderr


@pytest.mark.parametrize("row, message", [
    ("{not json", "runs.jsonl:2: not valid JSON"),
    ({"id": "x", "program": "pass"}, "runs.jsonl:2: give exactly one of 'tests' or 'io'"),
    ({"id": "x", "program": 3, "tests": ["assert 1"]}, "field 'program' must be a string"),
    ({"id": "x", "program": "", "io": [{"input": "1"}]}, "io[0] must be"),
    ({"id": "x", "program": "", "tests": ["assert 1"], "timeout": 3}, "unknown fields ['timeout']"),
    ({"id": "x", "program": "", "tests": ["assert ("]}, "test 0 is not valid Python"),
    ({"id": "first", "program": "", "tests": ["assert 1"]}, "duplicate id 'first'"),
])
def test_cli_rejects_malformed_rows_before_running(tmp_path, row, message):
    _write(tmp_path / "runs.jsonl", [{"id": "first", "program": "", "tests": ["assert 1"]}, row])
    proc = _cli("--in", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "out.jsonl"))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_does_not_overwrite_results(tmp_path):
    _write(tmp_path / "runs.jsonl", [{"id": "a", "program": "", "tests": ["assert 1"]}])
    (tmp_path / "out.jsonl").write_text("precious\n")
    proc = _cli("--in", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (tmp_path / "out.jsonl").read_text() == "precious\n"
    proc = _cli("--in", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o2.jsonl"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["--in", str(d), "--out", str(d / "o.jsonl")], "is not a file"),
    (lambda d: ["--in", str(d / "missing.jsonl"), "--out", str(d / "o.jsonl")], "does not exist"),
    (lambda d: ["--in", str(d / "runs.jsonl"), "--out", str(d / "nope" / "o.jsonl")],
     "folder of --out"),
    (lambda d: ["--in", str(d / "runs.jsonl"), "--out", str(d), "--overwrite"], "is a directory"),
    (lambda d: ["--in", str(d / "runs.jsonl"), "--out", str(d / "o.jsonl"), "--workers", "0"],
     "--workers must be at least 1"),
])
def test_cli_argument_errors_are_one_line(tmp_path, make_args, message):
    # The slow row would take seconds: the error must come before any job runs.
    _write(tmp_path / "runs.jsonl", [{"id": "slow", "program": "import time\ntime.sleep(5)",
                                      "tests": ["assert True"]}])
    proc = _cli(*make_args(tmp_path))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_rejects_tests_that_skip_their_asserts(tmp_path):
    _write(tmp_path / "runs.jsonl", [
        {"id": "a", "program": "def f():\n    return 1\n", "tests": ["assert f() == 1"]},
        {"id": "b", "program": "def f():\n    return 2\n", "tests": ["assert f() == 2", "return"]}])
    proc = _cli("--in", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2
    assert "runs.jsonl:2" in proc.stderr and "test 1" in proc.stderr, proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_survives_programs_that_forge_records(tmp_path):
    forger = ("import os\nfor fd in range(3, 1100):\n    try:\n        os.write(fd, b'\\x00\\x00\\x00\\x05xxxxx')\n"
              "    except OSError:\n        pass\ndef f():\n    return 1\n")
    _write(tmp_path / "runs.jsonl", [
        {"id": "forger", "program": forger, "tests": ["assert f() == 2"]},
        {"id": "io", "program": "print(2_000_000)", "io": [{"input": "", "output": "2000000"}]},
        {"id": "ok", "program": "def f():\n    return 2\n", "tests": ["assert f() == 2"]}])
    proc = _cli("--in", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 0, proc.stderr
    out = {r["id"]: r for r in map(json.loads, (tmp_path / "o.jsonl").read_text().splitlines())}
    assert not out["forger"]["passed"] and out["forger"]["status"] != "infrastructure_error"
    assert out["io"]["status"] == "passed"  # print(2_000_000) prints 2000000
    assert out["ok"]["passed"]
