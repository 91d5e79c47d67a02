"""The Line contract: blank lines skipped, comments neutral, reward token = the token holding the
line's newline (merged BPE tokens included), several lines per token handled."""

import numpy as np
import pytest

from prm_jax import lines as L
from prm_jax.tokenizer import load_tokenizer

CODE = ("    total = 0\n"
        "    # accumulate\n"
        "\n"
        "    for x in xs:\n"
        "        total += f(x)\n"
        "\n\n"
        "    return total")


def test_split_lines():
    lines = L.split_lines(CODE)
    assert [l.text.strip() for l in lines] == ["total = 0", "# accumulate", "for x in xs:",
                                                "total += f(x)", "return total"]
    assert [l.step for l in lines] == [0, 1, 2, 3, 4]
    assert [l.line_no for l in lines] == [0, 1, 3, 4, 7]
    assert [l.kind for l in lines] == ["step", "comment", "step", "step", "step"]
    assert all(CODE[l.start:l.end] == l.text for l in lines)
    assert lines[-1].has_newline is False and lines[0].has_newline
    assert L.prefix_through(CODE, lines, 0) == ""
    assert L.prefix_through(CODE, lines, 3, newline=True) == CODE[: CODE.index("for x in xs:\n") + 13]
    assert L.prefix_through(CODE, lines, 3) == CODE[: CODE.index("for x in xs:\n") + 12]
    assert L.prefix_through(CODE, lines, 5, newline=True) == CODE + "\n"
    assert L.prefix_through(CODE, lines, 5) == CODE


def _offsets(tokenizer, text):
    return [tuple(o) for o in tokenizer(text, return_offsets_mapping=True)["offset_mapping"]]


def _check_contract(text, offsets):
    lines = L.split_lines(text)
    tokens = L.reward_tokens(lines, offsets)
    for line, t in zip(lines, tokens):
        if line.has_newline:
            start, end = offsets[t]
            assert start <= line.end < end, (line, offsets[t])
        else:
            assert t == len(offsets) - 1
    return lines, tokens


def test_builtin_tokenizer_merges_newlines_with_indentation():
    tok = load_tokenizer()
    offsets = _offsets(tok, CODE)
    pieces = [CODE[s:e] for s, e in offsets]
    assert any(p.count("\n") >= 2 for p in pieces)  # a merged `\n\n   `-style token exists
    _check_contract(CODE, offsets)


def test_real_bpe_style_merges(tmp_path):
    """A GPT-2-style byte-level BPE trained on code merges `)\\n\\n    ` into one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    corpus = ["def f(x):\n    return g(x)\n\n    y = h(x)\n\n    z = k(y)\n"] * 200
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Split(r"\s*\S+|\s+", behavior="isolated")
    import string
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, show_progress=False, initial_alphabet=list(string.printable)))
    text = "    a = g(x)\n\n    b = h(a)\n    return b\n"
    enc = tokenizer.encode(text)
    offsets = list(enc.offsets)
    pieces = [text[s:e] for s, e in offsets]
    assert any("\n\n" in p for p in pieces), pieces
    _check_contract(text, offsets)


def test_several_lines_in_one_token():
    text = "a = 1\nb = 2\nc = 3\n"
    # Token 1 spans "1\nb = 2\n": lines 0 and 1 end inside it.
    offsets = [(0, 4), (4, 12), (12, 17), (17, 18)]
    lines, tokens = _check_contract(text, offsets)
    assert tokens == [1, 1, 3]
    rewards = L.scatter_rewards(4, tokens, [0.5, 0.25, -1.0])
    np.testing.assert_allclose(rewards, [0, 0.75, 0, -1.0])
    targets, mask = L.scatter_targets(4, tokens, [1, -1, -1])
    np.testing.assert_array_equal(targets, [0, -1, 0, -1])  # the last line's label wins
    np.testing.assert_array_equal(mask, [False, True, False, True])


def test_final_line_and_eos():
    text = "x = 1\nreturn x"
    offsets = [(0, 6), (6, 12), (12, 14), (14, 14)]  # last: EOS, spans no text
    lines, tokens = _check_contract(text, offsets)
    assert tokens == [0, 3]


def test_mismatched_offsets_are_an_error():
    with pytest.raises(ValueError, match="no token covers the newline"):
        L.reward_tokens(L.split_lines("a\nb\n"), [(0, 1), (2, 3)])
    with pytest.raises(ValueError, match="at least one token"):
        L.reward_tokens(L.split_lines("a"), [])
