"""The reward formula on a fixed tokenisation (hand-computed), and its hack invariances."""

import numpy as np
import pytest

from prm_jax.rl.rewards import RewardConfig, reward_positions, scored_lines, token_rewards

# '    a = f(x)\n    # check\n\n    return a' + EOS; token 6 merges "\n\n    " (two lines end in it
# only if both are lines: here the blank line is not a line, so the comment ends there alone).
TEXT = "    a = f(x)\n    # check\n\n    return a"
OFFSETS = [(0, 5), (5, 9), (9, 12), (12, 16), (16, 18), (18, 24), (24, 30), (30, 36), (36, 38)]
EOS = (38, 38)
PRM_AT = {3: 0.8, 6: 0.1, 8: -0.6}  # PRM output at the line-end tokens


def _rewards(text, offsets, stop_reason, passed, config=RewardConfig(), prm=PRM_AT):
    lines, tokens = scored_lines(text, offsets, stop_reason)
    scores = [prm[t] for t in tokens]
    return token_rewards(len(offsets), lines, tokens, scores, passed, config), tokens


def test_hand_computed_vector_eos():
    (outcome, dense), tokens = _rewards(TEXT, OFFSETS + [EOS], "eos", passed=False)
    assert tokens == [3, 6, 8]  # the last line ends on the last *text* token, not on EOS
    expected = np.zeros(10)
    expected[3], expected[8] = 0.25 / 2 * 0.8, 0.25 / 2 * -0.6  # λ/T with T = 2 code lines
    np.testing.assert_allclose(dense, expected, atol=1e-7)
    assert outcome.tolist() == [0.0] * 10
    (outcome, dense), _ = _rewards(TEXT, OFFSETS + [EOS], "eos", passed=True)
    np.testing.assert_allclose(dense[[3, 6, 8]], [0.01, 0.0, -0.0075], atol=1e-7)
    assert outcome[9] == 1.0 and outcome[:9].sum() == 0  # the outcome sits on the EOS


def test_stop_string_and_truncated_rows():
    (outcome, dense), _ = _rewards(TEXT, OFFSETS, "stop_string", passed=True)
    assert outcome[8] == 1.0 and len(outcome) == 9  # no EOS: outcome on the last kept token
    np.testing.assert_allclose(dense[[3, 8]], [0.01, -0.0075], atol=1e-7)
    # Truncated: the unterminated last line is partial and earns nothing; T counts what is scored.
    (outcome, dense), tokens = _rewards(TEXT, OFFSETS, "length", passed=False)
    assert tokens == [3, 6] and dense[8] == 0
    assert dense[3] == pytest.approx(0.25 / 1 * 0.8)


def test_reward_positions_mark_the_outcome_token_and_code_line_tokens():
    lines, tokens = scored_lines(TEXT, OFFSETS + [EOS], "eos")
    outcome_at, dense_at = reward_positions(10, lines, tokens, RewardConfig())
    assert np.flatnonzero(outcome_at).tolist() == [9]
    assert np.flatnonzero(dense_at).tolist() == [3, 8]  # the comment line (token 6) is no entry
    _, dense_at = reward_positions(10, lines, tokens, RewardConfig(dense=False))
    assert dense_at.sum() == 0


def test_comment_lines_get_exactly_zero_whatever_the_prm_says():
    (_, dense), _ = _rewards(TEXT, OFFSETS + [EOS], "eos", passed=False, prm={3: 0.8, 6: 0.9, 8: -0.6})
    assert dense[6] == 0.0


def test_lines_sharing_a_token_add_up():
    text = "    a = 1\n    b = 2\n"
    offsets = [(0, 9), (9, 20)]  # token 1 holds both newlines ("\n    b = 2\n")
    lines, tokens = scored_lines(text, offsets, "stop_string")
    assert tokens == [1, 1]
    _, dense = token_rewards(2, lines, tokens, [0.4, -0.2], False, RewardConfig())
    assert dense[1] == pytest.approx(0.25 / 2 * (0.4 - 0.2))


def _sum_for(code_lines, scores, *, comments=0, blanks=0, config=RewardConfig()):
    """Dense sum of a failing response built from `code_lines` (+ comment and blank lines)."""
    text_lines = list(code_lines) + ["    # note"] * comments + [""] * blanks
    text = "\n".join(text_lines) + "\n"
    offsets, pos = [], 0
    for line in text_lines:  # one token per line body, one per newline
        offsets += [(pos, pos + len(line)), (pos + len(line), pos + len(line) + 1)]
        pos += len(line) + 1
    lines, tokens = scored_lines(text, offsets, "stop_string")
    by_text = dict(zip(code_lines, scores))
    prm = [by_text.get(l.text, 0.9) for l in lines]  # comments scored high by a naive PRM
    outcome, dense = token_rewards(len(offsets), lines, tokens, prm, False, config)
    return dense.sum() + outcome.sum()


def test_dense_sum_resists_padding_hacks():
    code, scores = ["    a = 1", "    b = a + 2", "    c = b * 0"], [0.5, 0.2, -0.9]
    base = _sum_for(code, scores)
    assert _sum_for(code, scores, comments=3) == pytest.approx(base)
    assert _sum_for(code, scores, blanks=2) == pytest.approx(base)
    # Duplicating the failing line does not raise the total.
    assert _sum_for(code + ["    c = b * 0"], scores + [-0.9]) <= base + 1e-9
    # Counting comments in T would let them dilute the negative sum: why it is not the default.
    diluted = _sum_for(code, scores, comments=3, config=RewardConfig(normalize_by="all_lines"))
    assert diluted > 0.6 * base  # three comments halve the negative sum
    # "progress" telescopes to λ·s_last and "nonpositive" never rewards a line.
    progress = _sum_for(code, scores, config=RewardConfig(dense_form="progress"))
    assert progress == pytest.approx(0.25 * -0.9)
    assert _sum_for(code, scores, config=RewardConfig(dense_form="nonpositive")) == pytest.approx(
        0.25 / 3 * -0.9)


def test_bad_reward_options():
    with pytest.raises(ValueError, match="dense_form"):
        RewardConfig(dense_form="max")


def test_empty_responses_are_masked_or_scored_as_failures_by_config():
    """An EOS-only response: masked by default (counted, no gradient), or with `empty="score"`
    a failing sample whose EOS carries the failure outcome (so an all-empty policy still gets
    a gradient away from stopping at once)."""
    from prm_jax.rl.rollout import MASK_EMPTY, build_rollout, reward_parts
    from prm_jax.sampling import SampleBatch

    eos, text = 2, [5, 6, 7]
    out = SampleBatch(prompt_index=[0, 0], sample_index=[0, 1], token_ids=[[eos], text + [eos]],
                      texts=["", "    return 1\n"],
                      logprobs=[np.zeros(1, np.float32), np.zeros(4, np.float32)],
                      sampling_logprobs=[np.zeros(1, np.float32), np.zeros(4, np.float32)],
                      stop_reasons=["eos", "eos"],
                      offsets=[[(0, 0)], [(0, 4), (4, 11), (11, 13), (13, 13)]])
    masked = build_rollout([[1, 3]], out, [False, False], max_new_tokens=4,
                           reward_config=RewardConfig(dense=False))
    assert masked.mask_reason == [MASK_EMPTY, None] and masked.response_mask[0].sum() == 0
    scored = build_rollout([[1, 3]], out, [False, False], max_new_tokens=4,
                           reward_config=RewardConfig(dense=False, empty="score", outcome_fail=-0.5))
    assert scored.mask_reason == [None, None]
    np.testing.assert_array_equal(scored.response_mask[0], [1, 0, 0, 0])
    parts = reward_parts(scored, None, RewardConfig(dense=False, empty="score", outcome_fail=-0.5))
    np.testing.assert_array_equal(parts["outcome"][0], [-0.5, 0, 0, 0])
    np.testing.assert_array_equal(parts["outcome_at"], [[1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(parts["dense_at"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="empty='drop'"):
        RewardConfig(empty="drop")
