"""Labelling with a scripted policy (known completions): exact first error, cost bound, agreement
with per-line Monte Carlo, resume, and the real sandbox on synthetic problems."""

import json

import pytest

from prm_jax.data import synthetic
from prm_jax.data.problem import Problem
from prm_jax.prm import label as L
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.sandbox import SandboxPool


def _problem(i=0):
    return Problem(task_id=f"p{i}", prompt="def f():\n", entry_point="f", test_kind="assert",
                   tests=("assert f() == 1",))


def _response(T, comment_at=None):
    lines = [f"    x{i} = {i}" if i != comment_at else "    # note" for i in range(T)]
    return "\n".join(lines) + "\n"


class ScriptedPolicy:
    """Prefix with m lines is recoverable iff m <= recoverable[task]; only the last of the K
    completions of a recoverable prefix passes (exercises waves and early exit)."""

    def __init__(self, recoverable, k):
        self.recoverable, self.k, self.calls = recoverable, k, 0
        self.sampled_per = {}  # completions already drawn per (task, prefix)

    def complete(self, requests, n, seed):
        out = []
        for problem, prefix in requests:
            m = sum(1 for line in prefix.split("\n") if line.strip())
            ok = m <= self.recoverable[problem.task_id]
            start = self.sampled_per.get((problem.task_id, prefix), 0)
            lead = "\n" if m else ""
            texts = [lead + ("    return 1  # OK\n" if (ok and start + j == self.k - 1) else "    return 0\n")
                     for j in range(n)]
            self.sampled_per[(problem.task_id, prefix)] = start + n
            out.append(texts)
        self.calls += 1
        return out


class MarkerVerifier:
    def verify(self, items):
        return [text.rstrip().endswith("# OK") for _, text in items]


@pytest.mark.parametrize("T", [1, 2, 5, 8, 13])
@pytest.mark.parametrize("k, wave", [(1, 1), (4, 2), (3, 3)])
def test_binary_search_finds_the_first_unrecoverable_line(T, k, wave):
    for first in range(T):  # recoverable through `first` lines: line `first` is the first error
        policy = ScriptedPolicy({"p0": first}, k)
        item = L.Response(_problem(), _response(T), passed=False)
        row = L.label_batch([item], policy, MarkerVerifier(), L.LabelConfig(k=k, wave=wave))[0]
        assert row["first_error_line"] == first
        assert [l["label"] for l in row["lines"]] == [1] * first + [-1] * (T - first)
        assert row["rollouts"] <= L.max_completions(T, k)
        assert row["empty_prefix_solvable"] is True
        # Per-line Monte Carlo agrees on this monotone case, at a higher cost.
        mc = L.label_batch([item], ScriptedPolicy({"p0": first}, k), MarkerVerifier(),
                           L.LabelConfig(method="monte_carlo", k=k, wave=wave))[0]
        assert [l["label"] for l in mc["lines"]] == [l["label"] for l in row["lines"]]
        assert mc["rollouts"] >= row["rollouts"] or T <= 2


def test_unsolvable_passing_and_comment_lines():
    policy = ScriptedPolicy({"p0": -1, "p1": 5}, 4)
    items = [L.Response(_problem(0), _response(6), passed=False),
             L.Response(_problem(1), _response(4, comment_at=1), passed=True),
             L.Response(_problem(2), "", passed=False)]
    policy.recoverable["p2"] = 0
    rows = L.label_batch(items, policy, MarkerVerifier(), L.LabelConfig(k=4, wave=2))
    assert rows[0]["empty_prefix_solvable"] is False and rows[0]["rollouts"] == 4
    assert {l["label"] for l in rows[0]["lines"]} == {-1}
    assert rows[1]["rollouts"] == 0 and [l["label"] for l in rows[1]["lines"]] == [1, 0, 1, 1]
    assert rows[1]["lines"][1]["kind"] == "comment"
    assert rows[2]["lines"] == []


def test_resume_ends_with_the_same_file(tmp_path):
    recoverable = {f"p{i}": i % 5 for i in range(7)}
    items = [L.Response(_problem(i), _response(6), passed=False) for i in range(7)]
    config = L.LabelConfig(k=3, wave=1, batch_size=2)

    def run(path):
        policy = ScriptedPolicy(recoverable, 3)
        return L.label_responses(items, policy, MarkerVerifier(), config, str(path))

    stats = run(tmp_path / "full.jsonl")
    full = (tmp_path / "full.jsonl").read_text()
    # A run killed after its second batch, mid-way through writing the third.
    lines = full.splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_text("".join(lines[:4]) + lines[4][:25])
    assert run(tmp_path / "cut.jsonl") == stats
    assert (tmp_path / "cut.jsonl").read_text() == full
    assert stats["responses"] == 7 and stats["rollouts"] > 0


@pytest.mark.parametrize("complete_rows", [1, 3])
def test_kill_mid_batch_leaves_no_duplicates(tmp_path, complete_rows):
    """Killed after writing some whole rows of a batch (with or without a torn line after them):
    the resumed file holds every response once and equals an uninterrupted run's."""
    recoverable = {f"p{i}": i % 5 for i in range(7)}
    items = [L.Response(_problem(i), _response(6), passed=False) for i in range(7)]
    config = L.LabelConfig(k=3, wave=1, batch_size=4)

    def run(path):
        return L.label_responses(items, ScriptedPolicy(recoverable, 3), MarkerVerifier(), config,
                                 str(path))

    stats = run(tmp_path / "full.jsonl")
    full = (tmp_path / "full.jsonl").read_text()
    lines = full.splitlines(keepends=True)
    # Batch 0 is rows 0-3; batch 1 is rows 4-6: keep batch 0 plus part of batch 1.
    cut = "".join(lines[:4 + complete_rows]) + (lines[4 + complete_rows][:20] if complete_rows < 3 else "")
    (tmp_path / "cut.jsonl").write_text(cut)
    assert run(tmp_path / "cut.jsonl") == stats
    ids = [json.loads(line)["response_id"] for line in (tmp_path / "cut.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 7
    assert (tmp_path / "cut.jsonl").read_text() == full


def test_selection_strategies():
    rows = [{"task_id": "a", "passed": True, "empty_prefix_solvable": True},
            {"task_id": "b", "passed": False, "empty_prefix_solvable": True},
            {"task_id": "c", "passed": False, "empty_prefix_solvable": False},
            {"task_id": "d", "passed": False, "empty_prefix_solvable": True, "masked": True}]
    assert [r["task_id"] for r in L.select(rows)] == ["a", "b", "c"]
    assert [r["task_id"] for r in L.select(rows, "revised_only")] == ["a", "b"]
    assert [r["task_id"] for r in L.select(rows, "difficulty", pass_rates={"a": 0.9, "b": 0.2, "c": 0.5},
                                           max_pass_rate=0.6)] == ["b", "c"]
    with pytest.raises(ValueError, match="unknown selection strategy"):
        L.select(rows, "best")


class ReferencePolicy:
    """Continues a synthetic problem's reference from line m (the last completion), or writes a
    wrong line (the others)."""

    def __init__(self, k):
        self.k = k

    def complete(self, requests, n, seed):
        out = []
        for problem, prefix in requests:
            m = sum(1 for line in prefix.split("\n") if line.strip())
            ref = problem.reference.splitlines(keepends=True)
            lead = "\n" if m else ""  # prefixes stop before their last newline
            out.append([lead + "".join(ref[m:])] + [lead + "    return None\n"] * (n - 1))
        return out


def test_real_sandbox_on_synthetic_problems():
    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=8, min_horizon=4, max_horizon=7))
    items, expected = [], []
    for i, p in enumerate(problems):
        steps = synthetic.steps_of(p)
        j = i % len(steps)
        wrong = synthetic.Step("reverse") if steps[j].kind != "reverse" else synthetic.Step("sort")
        mutated = steps[:j] + [wrong] + steps[j + 1:]
        items.append(L.Response(p, synthetic.solution(mutated)))
        expected.append(j)
    with SandboxPool(workers=2) as pool:
        rows = L.label_batch(items, ReferencePolicy(2), SandboxVerifier(pool), L.LabelConfig(k=2, wave=2))
    for row, j, item in zip(rows, expected, items):
        if row["passed"]:  # the wrong step happened to be equivalent on every test
            continue
        assert row["first_error_line"] == j, (row, item.response)
        assert row["empty_prefix_solvable"] is True
