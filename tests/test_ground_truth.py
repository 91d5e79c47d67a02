"""Ground truth for the synthetic suite on hand-made responses; label agreement metrics."""

import pytest

from prm_jax.data import synthetic
from prm_jax.data.problem import Problem
from prm_jax.prm import ground_truth
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.sandbox import SandboxPool

STEPS = [synthetic.Step("add", 3), synthetic.Step("keep_even"), synthetic.Step("reverse")]


def _problem(steps=STEPS) -> Problem:
    inputs = [[1, 2, 3, 4, 5, 6], [-3, 0, 7, 8, 9, 10, 11], [5, 5, 2, 2, 1, 0]]
    tests = tuple(f"assert transform({xs!r}) == {synthetic.run_steps(steps, xs)!r}" for xs in inputs)
    return Problem(task_id="hand/0", prompt=synthetic.prompt(steps), entry_point="transform",
                   test_kind="assert", tests=tests, reference=synthetic.solution(steps),
                   assembly="append", source="synthetic",
                   meta={"horizon": len(steps), "steps": [[s.kind, s.k] for s in steps],
                         "inputs": inputs})


@pytest.fixture(scope="module")
def verifier():
    with SandboxPool(workers=2) as pool:
        yield SandboxVerifier(pool)


CASES = [
    # (response, first error, labels)
    ("    xs = [x + 3 for x in xs]\n    xs = [x for x in xs if x % 2 == 0]\n    return xs[::-1]\n",
     None, (1, 1, 1)),
    # The second step is wrong (odd instead of even): lines from it on are −1.
    ("    xs = [x + 3 for x in xs]\n    xs = [x for x in xs if x % 2 == 1]\n    return xs[::-1]\n",
     1, (1, -1, -1)),
    # Wrong constant on the first line.
    ("    xs = [x + 4 for x in xs]\n    xs = [x for x in xs if x % 2 == 0]\n    return xs[::-1]\n",
     0, (-1, -1, -1)),
    # Forgot the last step: only the final line is wrong.
    ("    xs = [x + 3 for x in xs]\n    xs = [x for x in xs if x % 2 == 0]\n    return xs\n",
     2, (1, 1, -1)),
    # A no-op first line and a skipped step: prefixes stay recoverable until the final return.
    ("    xs = xs\n    xs = [x + 3 for x in xs]\n    return xs[::-1]\n", 2, (1, 1, -1)),
    # Two steps in one line, then the rest: correct.
    ("    xs = [x + 3 for x in xs if (x + 3) % 2 == 0]\n    return xs[::-1]\n", None, (1, 1)),
    # A comment line is neutral; the error after it is located on the step line.
    ("    # add three\n    xs = [x + 3 for x in xs]\n    # now filter\n    xs = [x for x in xs if x > 0]\n"
     "    return xs[::-1]\n", 3, (0, 1, 0, -1, -1)),
    # A line that raises is unrecoverable.
    ("    xs = [x + 3 for x in xs]\n    xs = xs[None + 1]\n    return xs\n", 1, (1, -1, -1)),
]


def test_ground_truth_on_hand_made_responses(verifier):
    p = _problem()
    truths = ground_truth.ground_truth([(p, r, None) for r, _, _ in CASES], verifier)
    for (response, first, labels), truth in zip(CASES, truths):
        assert not truth.masked
        assert truth.first_error == first, response
        assert truth.labels == labels, response
        assert truth.passed == (first is None)


def test_recoverability_is_per_prefix(verifier):
    p = _problem()
    response = "    xs = xs\n    xs = [x + 3 for x in xs]\n    return xs[::-1]\n"
    (truth,) = ground_truth.ground_truth([(p, response, False)], verifier)
    assert truth.recoverable == (True, True, False)


def test_candidates_cover_every_prefix_and_suffix():
    p = _problem()
    response = "    xs = [x + 3 for x in xs]\n    xs = sorted(xs)\n    return xs\n"
    cands = ground_truth.candidates(p, response)
    assert [m for m, _ in cands] == [1] * 4 + [2] * 4
    assert cands[0][1] == "    xs = [x + 3 for x in xs]\n" + p.reference
    assert cands[3][1].endswith("    xs = [x + 3 for x in xs]\n    return xs\n")


def test_kappa_and_label_accuracy_chance_levels():
    from prm_jax.prm import label_accuracy

    assert label_accuracy.cohen_kappa([-1, -1, -1, 1], [-1, -1, -1, -1]) == 0.0
    assert label_accuracy.cohen_kappa([1, -1, 1, -1], [1, -1, 1, -1]) == 1.0
    truths = [ground_truth.Truth((True, False, False), 1, (1, -1, -1), False),
              ground_truth.Truth((False, False), 0, (-1, -1), False),
              ground_truth.Truth((True,), None, (1,), True)]  # passing: left out

    def row(labels, first):
        return {"response_id": "r", "lines": [{"label": y} for y in labels],
                "first_error_line": first, "rollouts": 4}

    constant = label_accuracy.label_accuracy(
        [row([-1, -1, -1], 0), row([-1, -1], 0), row([1], None)], truths)
    assert constant["failing_responses"] == 2 and constant["lines"] == 5
    assert constant["line_accuracy"] == 0.8 == constant["chance"]["constant_bad_line_accuracy"]
    assert constant["kappa"] == 0.0 and constant["first_error_accuracy"] == 0.5
    assert constant["chance"]["first_line_first_error_accuracy"] == 0.5
    exact = label_accuracy.label_accuracy([row([1, -1, -1], 1), row([-1, -1], 0)], truths[:2])
    assert exact["kappa"] == 1.0 and exact["first_error_accuracy"] == 1.0


def test_probe_pairs_are_wrong_and_scored_fairly():
    from prm_jax.prm import probe

    problems = synthetic.generate(synthetic.SyntheticConfig(
        num_problems=20, min_horizon=2, max_horizon=4, split="test", comment_fraction=0.3))
    pairs = probe.make_pairs(problems, seed=0)
    assert len(pairs) > 40 and {p.kind for p in pairs} == {"constant", "operation"}
    for p in pairs:
        problem = next(q for q in problems if q.task_id == p.task_id)
        steps = synthetic.steps_of(problem)
        right_lines = p.right.split("\n")
        wrong_lines = p.wrong.split("\n")
        assert sum(a != b for a, b in zip(right_lines, wrong_lines)) == 1
        assert not any(lines.is_comment for lines in [ground_truth.lines_lib.split_lines(p.wrong)[p.line]])
        assert 0 <= p.step < len(steps)

    def scores(text, wrong_at=None):
        return [0.0 if l.is_comment else (-1.0 if wrong_at is not None and l.step >= wrong_at else 1.0)
                for l in ground_truth.lines_lib.split_lines(text)]

    perfect = probe.probe_metrics(pairs, [scores(p.right) for p in pairs],
                                  [scores(p.wrong, p.line) for p in pairs])
    assert perfect["pair_accuracy"] == 1.0 and perfect["program_auroc"] == 1.0
    constant = probe.probe_metrics(pairs, [[0.3] * len(scores(p.right)) for p in pairs],
                                   [[0.3] * len(scores(p.wrong)) for p in pairs])
    assert constant["pair_accuracy"] == 0.5 and constant["program_auroc"] == 0.5
    assert perfect["comment_lines"]["lines"] > 0 and perfect["comment_lines"]["mean_abs_score"] == 0.0
