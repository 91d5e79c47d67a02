"""Counterfactual PRM pairs: which rows pair, where they are compared, and the pair loss."""

import jax.numpy as jnp
import numpy as np
import pytest

from prm_jax.prm.pairs import pair_examples, pair_line
from prm_jax.tokenizer import load_tokenizer
from prm_jax.train.losses import PAIR_SCALE, PAIR_WEIGHT, prm_mse_pair_loss

PROMPT = 'def transform(xs):\n    """1. multiply every element by 4\n    2. reverse the list\n    """\n'


def _row(response_id, lines, labels, operator, passed):
    return {"task_id": "t", "response_id": response_id, "prompt": PROMPT, "passed": passed,
            "response": "".join(text + "\n" for text in lines), "operator": operator,
            "lines": [{"text": text, "label": label, "kind": "comment" if text.strip().startswith("#")
                       else "step"} for text, label in zip(lines, labels)]}


REFERENCE = _row("t::reference", ["    # multiply", "    xs = [x * 4 for x in xs]", "    return xs[::-1]"],
                 [0, 1, 1], "reference", True)
CONSTANT = _row("t/constant@1", ["    # multiply", "    xs = [x * 5 for x in xs]", "    return xs[::-1]"],
                [0, -1, -1], "constant", False)
HARMLESS = _row("t/variable@2", ["    # multiply", "    xs = [x * 4 for x in xs]", "    return list(reversed(xs))"],
                [0, 1, 1], "teacher", True)
COMMENT = _row("t/teacher@0", ["    # times four", "    xs = [x * 5 for x in xs]", "    return xs[::-1]"],
               [0, -1, -1], "teacher", False)


def test_only_failing_variants_pair_at_their_changed_line():
    assert pair_line(REFERENCE, CONSTANT) == 1
    assert pair_line(REFERENCE, HARMLESS) is None       # still passes: nothing to rank
    assert pair_line(REFERENCE, COMMENT) is None        # the first difference is a comment (label 0)
    assert pair_line(REFERENCE, REFERENCE) is None


def test_pair_examples_point_at_the_changed_lines_reward_tokens():
    from prm_jax import lines as lines_lib

    tok = load_tokenizer("builtin")
    examples, skipped = pair_examples([REFERENCE, CONSTANT, HARMLESS, COMMENT], tok, 128)
    assert skipped == 0 and len(examples) == 4
    assert all(e["tokens"].shape == (2, 128) for e in examples)
    by_valid = [float(e["pair_valid"]) for e in examples]
    assert by_valid == [0.0, 1.0, 0.0, 0.0]
    pair = examples[1]
    own = lines_lib.encode(tok, PROMPT, CONSTANT["response"]).reward_positions[1]
    ref = lines_lib.encode(tok, PROMPT, REFERENCE["response"]).reward_positions[1]
    assert tuple(pair["pair_pos"]) == (own, ref)
    # Slot 1 is the reference's tokens without targets (each row's lines count once).
    assert not pair["target_mask"][1].any() and pair["target_mask"][0].sum() == 3
    np.testing.assert_array_equal(pair["tokens"][1], examples[0]["tokens"][0])
    # Both sequences agree through the line before the changed one, and differ on it.
    prefix = lines_lib.encode(tok, PROMPT, REFERENCE["response"]).reward_positions[0] + 1
    assert (pair["tokens"][0][:prefix] == pair["tokens"][1][:prefix]).all()
    assert (pair["tokens"][0][prefix:ref + 1] != pair["tokens"][1][prefix:ref + 1]).any()


def test_pair_loss_matches_a_numpy_oracle():
    rng = np.random.default_rng(0)
    b, t = 3, 6
    values = rng.normal(size=(b * 2, t)).astype(np.float32)
    batch = {"tokens": np.zeros((b, 2, t), np.int32), "mask": np.ones((b, 2, t), np.int32),
             "targets": rng.choice([-1.0, 0.0, 1.0], size=(b, 2, t)).astype(np.float32),
             "target_mask": rng.integers(0, 2, size=(b, 2, t)).astype(np.int32),
             "pair_pos": np.asarray([[1, 2], [4, 4], [0, 5]], np.int32),
             "pair_valid": np.asarray([1.0, 0.0, 1.0], np.float32)}
    batch["target_mask"][:, 1] = 0

    def model(tokens, mask_BxT):
        assert tokens.shape == (b * 2, t)
        return jnp.asarray(values), None

    loss, metrics = prm_mse_pair_loss(model, {k: jnp.asarray(v) for k, v in batch.items()})
    w = batch["target_mask"].reshape(b * 2, t).astype(np.float64)
    y = batch["targets"].reshape(b * 2, t)
    mse = (w * (values - y) ** 2).sum() / w.sum()
    v = values.reshape(b, 2, t)
    margins = np.asarray([v[i, 1, batch["pair_pos"][i, 1]] - v[i, 0, batch["pair_pos"][i, 0]]
                          for i in range(b)])
    valid = batch["pair_valid"]
    pair = (valid * np.log1p(np.exp(-PAIR_SCALE * margins))).sum() / (PAIR_SCALE * valid.sum())
    assert float(loss) == pytest.approx(mse + PAIR_WEIGHT * pair, rel=1e-5)
    assert float(metrics["pair_accuracy"]) == pytest.approx((valid * (margins > 0)).sum() / valid.sum())
