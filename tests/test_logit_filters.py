"""Sort-free nucleus filtering and the inverse-CDF draw against NumPy oracles."""

import jax
import numpy as np
import pytest
from scipy import stats

from prm_jax.logit_filters import (fallback_branch, fallback_sizes, sample,
                                   sample_with_log_prob, warp_logits)


def _nucleus_oracle(logits, temperature, top_k, top_p):
    """NumPy: sort descending, keep while the mass before is < top_p (and within top-k)."""
    scaled = logits.astype(np.float64) / temperature
    order = np.argsort(-scaled, kind="stable")
    p = np.exp(scaled[order] - scaled.max())
    p /= p.sum()
    keep = (np.cumsum(p) - p) < top_p
    keep[0] = True
    if top_k:
        keep[top_k:] = False
    threshold = scaled[order][keep].min()
    return scaled >= threshold


@pytest.mark.parametrize("vocab", [300, 5000])
@pytest.mark.parametrize("top_k", [0, 7, 400])
def test_sort_free_nucleus_filter_equals_the_sorted_one(vocab, top_k):
    rng = np.random.default_rng(vocab + top_k)
    rows = [rng.normal(size=vocab) * scale for scale in (0.01, 0.3, 1.0, 3.0, 10.0, 30.0)]
    rows.append(np.where(np.arange(vocab) < 3, 5.0, 0.0))  # ties at the threshold
    logits = np.asarray(rows, np.float32)
    for temperature in (0.7, 1.0):
        for top_p in (0.1, 0.5, 0.9, 0.95, 0.999):
            warped = np.asarray(warp_logits(logits, temperature, top_k, top_p, True))
            for row, got in zip(logits, warped):
                expected = _nucleus_oracle(row, temperature, top_k, top_p)
                mismatch = np.isfinite(got) != expected
                assert not mismatch.any(), (temperature, top_p, np.nonzero(mismatch)[0][:5])
                np.testing.assert_allclose(got[expected], row[expected] / temperature, rtol=1e-6)


@pytest.mark.parametrize("flat_rows", [0, 1, 3, 4, 5, 8, 9, 17, 20])
def test_only_the_flat_rows_of_a_batch_are_bisected_and_all_rows_are_exact(flat_rows):
    """A batch of 20 peaked rows (nucleus among the candidates) with some flat ones: the flat
    rows are bisected in a gathered sub-batch of 4, 8 or 16 rows (the smallest that holds
    them), or with the whole batch beyond 16; every row equals the sorted oracle."""
    assert fallback_sizes(20) == (4, 8, 16) and fallback_sizes(4) == () and fallback_sizes(5) == (4,)
    rng = np.random.default_rng(flat_rows)
    rows = [rng.normal(size=2000) * 8 for _ in range(20)]
    for i in rng.choice(20, flat_rows, replace=False):
        rows[i] = rng.normal(size=2000) * 0.05
    logits = np.asarray(rows, np.float32)
    warped = np.asarray(jax.jit(lambda x: warp_logits(x, 1.0, 0, 0.9, True))(logits))
    for row, got in zip(logits, warped):
        np.testing.assert_array_equal(np.isfinite(got), _nucleus_oracle(row, 1.0, 0, 0.9))


def test_the_fallback_takes_the_smallest_gathered_size_that_holds_the_rows():
    sizes = fallback_sizes(20)
    branch = {o: int(fallback_branch(o, sizes)) for o in (0, 1, 4, 5, 8, 9, 16, 17, 20)}
    assert branch == {0: 0, 1: 1, 4: 1, 5: 2, 8: 2, 9: 3, 16: 3, 17: 4, 20: 4}
    assert [int(fallback_branch(o, fallback_sizes(4))) for o in (0, 1, 4)] == [0, 1, 1]


def test_inactive_rows_are_not_bisected_and_active_rows_stay_exact():
    """Finished or padding rows (active_B False) with flat logits do not count as needing the
    bisection: they keep only their candidates, while the active rows are exact."""
    rng = np.random.default_rng(11)
    logits = np.asarray([rng.normal(size=2000) * 8 for _ in range(8)]
                        + [rng.normal(size=2000) * 0.05 for _ in range(8)], np.float32)
    active = np.arange(16) < 10  # rows 8 and 9 are flat and active, 10…15 flat and inactive
    warped = np.asarray(jax.jit(lambda x, a: warp_logits(x, 1.0, 0, 0.9, True, active_B=a))(
        logits, active))
    for row, got in zip(logits[:10], warped[:10]):
        np.testing.assert_array_equal(np.isfinite(got), _nucleus_oracle(row, 1.0, 0, 0.9))
    assert (np.isfinite(warped[10:]).sum(-1) <= 16).all()
    assert (_nucleus_oracle(logits[10], 1.0, 0, 0.9).sum() > 1000)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 0, 0.9), (1.3, 40, 0.95),
                                                     (0.05, 0, 0.5)])
def test_the_draw_returns_the_log_probability_of_its_token(temperature, top_k, top_p):
    """sample_with_log_prob's log p equals log_softmax(warped)[token] (filtered entries −inf;
    a vocabulary that is not a multiple of the block)."""
    rng = np.random.default_rng(3)
    logits = np.asarray(rng.normal(size=(6, 1000)) * 3, np.float32)
    warped = warp_logits(logits, temperature, top_k, top_p, top_p < 1.0)
    keys = jax.random.split(jax.random.key(0), 6)
    tokens, log_p = sample_with_log_prob(keys, warped)
    expected = np.take_along_axis(np.asarray(jax.nn.log_softmax(warped, -1)),
                                  np.asarray(tokens)[:, None], -1)[:, 0]
    np.testing.assert_allclose(np.asarray(log_p), expected, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(tokens), np.asarray(sample(keys, warped)))


def _draws(logits, n, block, seed=0):
    keys = jax.random.split(jax.random.key(seed), n)
    return np.asarray(jax.jit(lambda k, x: sample(k, x, block))(keys, np.repeat(logits[None], n, 0)))


@pytest.mark.parametrize("block", [7, 64, 512])
def test_inverse_cdf_draws_follow_the_softmax_and_never_filtered_tokens(block):
    rng = np.random.default_rng(block)
    vocab = 300  # not a multiple of any block
    logits = (rng.normal(size=vocab) * 2).astype(np.float32)
    logits[rng.choice(vocab, 120, replace=False)] = -np.inf  # filtered (top-k / top-p)
    logits[-1] = -np.inf  # the last token of the last block, too
    n = 20000
    tokens = _draws(logits, n, block)
    allowed = np.isfinite(logits)
    assert allowed[tokens].all()
    probs = np.exp(logits[allowed] - logits[allowed].max())
    probs /= probs.sum()
    observed = np.bincount(tokens, minlength=vocab)[allowed]
    expected = probs * n
    big = expected >= 5
    chi2 = ((observed[big] - expected[big]) ** 2 / expected[big]).sum()
    assert stats.chi2.sf(chi2, big.sum() - 1) > 1e-3


def test_inverse_cdf_edge_cases():
    one = np.full(1000, -np.inf, np.float32)
    one[999] = 0.0
    assert set(_draws(one, 200, 512).tolist()) == {999}
    first = np.full(1000, -np.inf, np.float32)
    first[0] = 3.0
    assert set(_draws(first, 200, 512).tolist()) == {0}
    # Extreme spread: a dominant token and tokens at the float32 underflow edge.
    spread = np.asarray([0.0, -80.0, -200.0, 50.0, -np.inf], np.float32)
    assert set(_draws(spread, 500, 2).tolist()) == {3}
