"""PRM pieces: metrics against simple oracles, PRM loss on line-end tokens, scoring and pictures."""

import numpy as np
import pytest

from prm_jax.models import DecoderConfig, build_model
from prm_jax.prm import metrics as M
from prm_jax.prm import line_picture as LP
from prm_jax.prm.score import score_lines
from prm_jax.tokenizer import load_tokenizer
from prm_jax.train.examples import prm_example


def test_auroc_against_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties
    pos = rng.random(200) < 0.4
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a in scores[pos] for b in scores[~pos]]
    assert M.auroc(scores, pos) == pytest.approx(np.mean(pairs))
    assert np.isnan(M.auroc([1, 2], [True, True]))


def test_line_metrics_and_baselines():
    labels = [[1, 1, -1, -1], [1, 0, 1, 1], [-1, -1]]
    perfect = [[0.9, 0.8, -0.7, -0.9], [0.5, 0.0, 0.6, 0.9], [-0.5, -0.4]]
    m = M.line_metrics(perfect, labels)
    assert m["line_accuracy"] == 1.0 and m["auroc"] == 1.0 and m["first_error_accuracy"] == 1.0
    assert m["lines"] == 9 and m["failing_responses"] == 2
    base = M.baseline_metrics(labels, labels)
    assert base["majority"]["auroc"] == 0.5
    assert 0 <= base["position"]["auroc"] <= 1


def test_prm_example_targets_sit_on_line_end_tokens():
    tok = load_tokenizer()
    row = {"response_id": "r", "prompt": "def f(xs):\n",
           "response": "    xs = [x + 1 for x in xs]\n    # done\n\n    return xs\n",
           "lines": [{"label": 1}, {"label": 0}, {"label": -1}]}
    ex = prm_example(tok, row, 64)
    positions = np.nonzero(ex["target_mask"])[0]
    assert len(positions) == 3
    np.testing.assert_array_equal(ex["targets"][positions], [1, 0, -1])
    ids = ex["tokens"][: ex["mask"].sum()]
    for pos in positions:
        assert "\n" in tok.decode([int(ids[pos])])


def test_scores_are_the_values_at_line_reward_tokens(tmp_path):
    tok = load_tokenizer()
    config = DecoderConfig(vocab_size=1024, hidden_size=32, intermediate_size=64, num_layers=1,
                           num_heads=2, num_kv_heads=1)
    prm = build_model(config, head="scalar", seed=0)
    responses = ["    a = 1\n    return a\n", "    # only a comment\n\n    return 0"]
    scores = score_lines(prm, tok, ["def f():\n", "def g():\n"], responses, batch_size=4)
    assert [len(s) for s in scores] == [2, 2]
    # Same values as a direct forward pass at the reward tokens.
    values, _ = prm(np.asarray([tok("def f():\n")["input_ids"] +
                                tok(responses[0], add_special_tokens=False)["input_ids"]], np.int32))
    ids = tok(responses[0], add_special_tokens=False)["input_ids"]
    p = len(tok("def f():\n")["input_ids"])
    newline_tokens = [i for i, t in enumerate(ids) if "\n" in tok.decode([t])]
    np.testing.assert_allclose(scores[0], np.asarray(values[0])[[p + i for i in newline_tokens]], atol=1e-5)


def test_line_picture_says_whether_the_prm_found_the_first_error(tmp_path, monkeypatch):
    response = "    # add one\n    xs = [x + 1 for x in xs]\n\n    xs = xs[::-1]\n    return xs[2:]\n"
    labels = {"BS": [0, 1, -1, -1], "truth": [0, 1, 1, -1]}  # per non-blank line
    # Comment lines never count as the PRM's first error, whatever their score.
    right = LP.LineExample("def transform(xs):\n", response, [-0.5, 0.4, 0.2, -0.7], labels,
                           true_first_error=3)
    assert LP.prm_first_error(response, right.scores) == 3
    assert "line 4" in LP.verdict(right) and "RIGHT" in LP.verdict(right)
    wrong = LP.LineExample("def transform(xs):\n", response, [0.0, 0.4, -0.2, -0.7], labels,
                           true_first_error=3)
    assert "below 0 is line 3" in LP.verdict(wrong) and "WRONG" in LP.verdict(wrong)
    assert "no step line below 0" in LP.verdict(LP.LineExample("p", response, [1, 1, 1, 1]))
    page = LP.render_html(right, title="demo <x>")
    assert "rgb(" in page and "&lt;x&gt;" in page and "+0.40" in page and "RIGHT" in page
    assert page.count("<tr>") == 1 + 5  # header + five physical lines (one blank)
    import matplotlib.axes

    texts = []
    original = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        texts.append(s)
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy)
    two_line_prompt = LP.LineExample("def transform(xs):\n    \"\"\"doc\x17\"\"\"\n", response,
                                     right.scores, labels, 3)
    LP.render_png(two_line_prompt, str(tmp_path / "lines.png"), title="demo", caption="rule")
    # The prompt is drawn line by line; control characters are escaped, newlines are not.
    assert "def transform(xs):" in texts and '    """doc\\x17"""' in texts
    assert (tmp_path / "lines.png").stat().st_size > 5000
    assert LP.colour(-1) == (1.0, 0.0, 0.0) and LP.colour(1) == (0.0, 1.0, 0.0)
    assert LP.colour(0) == (1.0, 1.0, 1.0)
