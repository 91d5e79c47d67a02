"""One source of truth for splits: held-out compositions never reach a training problem set,
for the default config and for any seed; comment lines in references are neutral labels."""

import pytest

from prm_jax import lines as lines_lib
from prm_jax.data import synthetic
from prm_jax.prm.rows import line_labels
from prm_jax.run_config import RunConfig
from prm_jax.stages import common
from prm_jax.stages.label import REFERENCE_SEED_OFFSET
from prm_jax.stages.sample import LABEL_SEED_OFFSET

import configs.default as default_config


def _config(seed: int, **data) -> RunConfig:
    cfg = default_config.get_config()
    cfg.data.seed = seed
    cfg.data.num_train = 300
    for k, v in data.items():
        cfg.data[k] = v
    return RunConfig.from_config_dict(cfg, workdir="/tmp/unused")


def _training_sets(config: RunConfig):
    """Every problem set a training stage draws (SFT, labelling, reference mutation, RL)."""
    return {"sft": common.problems(config, "train", config.data.num_train),
            "label": common.problems(config, "train", 96, offset_seed=LABEL_SEED_OFFSET),
            "reference": common.problems(config, "train", 96, offset_seed=REFERENCE_SEED_OFFSET),
            "other_offset": common.problems(config, "train", 64, offset_seed=12345)}


@pytest.mark.parametrize("seed", [0, 1, 7, 1000, 31337])
def test_heldout_compositions_never_in_training_sets(seed):
    config = _config(seed)
    held = synthetic.heldout(config.data.seed, 0.2)
    test = common.problems(config, "test", 64)
    assert all(synthetic.contains_heldout(synthetic.steps_of(p), held) for p in test)
    test_prompts = {p.prompt for p in test}
    for name, problems in _training_sets(config).items():
        assert not any(synthetic.contains_heldout(synthetic.steps_of(p), held) for p in problems), name
        assert not test_prompts & {p.prompt for p in problems}, name


def test_split_seed_decides_the_heldout_set():
    a = synthetic.SyntheticConfig(seed=1000, split_seed=0)
    b = synthetic.SyntheticConfig(seed=0)
    assert a.held == b.held
    assert synthetic.SyntheticConfig(seed=1000).held != a.held


def test_comment_lines_in_references_are_neutral_labels():
    problems = synthetic.generate(synthetic.SyntheticConfig(
        num_problems=60, max_horizon=4, comment_fraction=0.3))
    with_comments = [p for p in problems if "#" in p.reference]
    assert len(with_comments) > 10
    for p in with_comments:
        lines = lines_lib.split_lines(p.reference)
        steps = [l for l in lines if not l.is_comment]
        assert len(steps) == p.meta["horizon"]
        labels = line_labels(lines, first_error=steps[-1].step)
        assert [y for l, y in zip(lines, [r["label"] for r in labels]) if l.is_comment] == \
            [0] * (len(lines) - len(steps))
        assert [r["label"] for r, l in zip(labels, lines) if not l.is_comment][-1] == -1
    # Without comment_fraction the references are unchanged (exactly H lines).
    plain = synthetic.generate(synthetic.SyntheticConfig(num_problems=60, max_horizon=4))
    assert all("#" not in p.reference for p in plain)
    assert [p.prompt for p in plain] == [p.prompt for p in problems]


def test_reference_rows_label_comments_neutral_and_steps_good():
    from prm_jax.prm.label import Response
    from prm_jax.stages.label import reference_row

    problems = synthetic.generate(synthetic.SyntheticConfig(
        num_problems=30, max_horizon=4, comment_fraction=0.5))
    p = next(q for q in problems if "#" in q.reference)
    row = reference_row(Response(p, p.reference, "reference", True))
    kinds = [(l["kind"], l["label"]) for l in row["lines"]]
    assert ("comment", 0) in kinds and all(y == (0 if k == "comment" else 1) for k, y in kinds)
    assert row["passed"] and row["first_error_line"] is None and row["rollouts"] == 0
