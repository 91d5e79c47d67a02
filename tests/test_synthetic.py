"""Synthetic long-horizon suite: correct references, many correct forms, wrong lines caught,
deterministic, split by composition."""

import pytest

from prm_jax.data import synthetic
from prm_jax.sandbox import SandboxPool


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2) as p:
        yield p


@pytest.mark.parametrize("split", ["train", "test"])
def test_references_and_alternatives_pass_for_every_horizon(pool, split):
    problems = []
    for h in range(1, 13):
        problems += synthetic.generate(synthetic.SyntheticConfig(
            seed=h, num_problems=6, min_horizon=h, max_horizon=h, split=split))
    for p in problems:
        body = [line for line in p.reference.splitlines() if line.strip()]
        assert len(body) == p.meta["horizon"]
    jobs = [p.job(p.reference, job_id=f"{p.task_id}/ref") for p in problems]
    jobs += [p.job(synthetic.alternative_solution(p, v), job_id=f"{p.task_id}/alt{v}")
             for p in problems for v in (0, 1)]
    results = pool.run_many(jobs)
    assert [r.id for r in results if not r.passed] == []
    # The alternatives really are different programs.
    assert sum(synthetic.alternative_solution(p, 0) != p.reference for p in problems) > len(problems) // 2


def test_one_wrong_line_is_caught(pool):
    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=150, max_horizon=12))
    rate = synthetic.mutation_detection_rate(problems)
    assert rate["rate"] > 0.95 and rate["lines"] > 500
    # The interpreter's verdicts agree with running the mutated programs.
    p = problems[3]
    steps = synthetic.steps_of(p)
    wrong = [synthetic.Step("reverse")] + steps[1:] if steps[0].kind != "reverse" else \
        [synthetic.Step("sort")] + steps[1:]
    predicted = any(synthetic.run_steps(wrong, xs) != synthetic.run_steps(steps, xs)
                    for xs in p.meta["inputs"])
    assert pool.run(p.job(synthetic.solution(wrong))).passed == (not predicted)


def test_deterministic_and_seed_dependent():
    a = synthetic.generate(synthetic.SyntheticConfig(seed=3, num_problems=20))
    b = synthetic.generate(synthetic.SyntheticConfig(seed=3, num_problems=20))
    c = synthetic.generate(synthetic.SyntheticConfig(seed=4, num_problems=20))
    assert [p.to_json() for p in a] == [p.to_json() for p in b]
    assert [p.prompt for p in a] != [p.prompt for p in c]


def test_splits_are_disjoint_by_composition():
    pairs, singles = synthetic.heldout(0, 0.2)
    train = synthetic.generate(synthetic.SyntheticConfig(num_problems=80, max_horizon=6))
    test = synthetic.generate(synthetic.SyntheticConfig(num_problems=80, max_horizon=6, split="test"))

    def compositions(p):
        kinds = [k for k, _ in p.meta["steps"]]
        return set(zip(kinds, kinds[1:])) if len(kinds) > 1 else {kinds[0]}

    for p in train:
        assert not (compositions(p) & (pairs | singles))
    for p in test:
        assert compositions(p) & (pairs | singles)
    assert not {p.prompt for p in train} & {p.prompt for p in test}


def test_spec_parsing_and_errors():
    config = synthetic.parse_spec("seed=2,num_problems=5,max_horizon=3,split=test")
    assert config.seed == 2 and config.split == "test" and config.max_horizon == 3
    with pytest.raises(ValueError, match="unknown synthetic spec key 'horizon'"):
        synthetic.parse_spec("horizon=3")
    with pytest.raises(ValueError, match="split must be"):
        synthetic.SyntheticConfig(split="dev")
    with pytest.raises(ValueError, match="min_horizon"):
        synthetic.SyntheticConfig(min_horizon=5, max_horizon=2)


def test_sequences_fit_a_tiny_model():
    from prm_jax.tokenizer import load_tokenizer

    tok = load_tokenizer()
    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=60, max_horizon=8))
    lengths = [len(tok(p.prompt + p.reference)["input_ids"]) for p in problems]
    assert max(lengths) < 400
