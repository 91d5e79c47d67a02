"""prm_jax/grid_stats.py against oracles: degenerate cases, coverage and power by simulation,
scipy's t-interval."""

import math

import numpy as np
import pytest
from scipy import stats

from prm_jax import grid_stats


def test_constant_outcomes_give_a_zero_width_interval():
    assert grid_stats.bootstrap_ci(np.ones((3, 10)), n_boot=200) == (1.0, 1.0, 1.0)
    m = np.zeros((2, 7))
    assert grid_stats.paired_difference_ci(m, m, n_boot=200) == (0.0, 0.0, 0.0)


def test_unscorable_cells_are_left_out():
    m = np.array([[1.0, 0.0, np.nan], [1.0, np.nan, np.nan]])
    mean, low, high = grid_stats.bootstrap_ci(m, n_boot=500)
    assert mean == pytest.approx(2 / 3)
    assert 0.0 <= low <= mean <= high <= 1.0


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="same seeds and problems"):
        grid_stats.paired_difference_ci(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"\[seeds, problems\]"):
        grid_stats.bootstrap_ci(np.ones(4))


def test_two_way_bootstrap_covers_the_true_rate_conservatively():
    """Seeds add their own noise (a per-seed shift of the pass rate) on top of problem
    difficulty; the 95% interval must cover the true mean at least about 95% of the time, and
    be no more than 1.6× as wide as the interval the grand mean's true spread implies (the
    two-way bootstrap of a crossed design is conservative, by design not by an unbounded
    amount)."""
    rng = np.random.default_rng(0)
    trials, covered, widths, means = 150, 0, [], []
    for t in range(trials):
        difficulty = rng.uniform(0.05, 0.6, 48)  # a fresh draw of problems each experiment
        seed_shift = rng.normal(0, 0.05, (5, 1))
        p = np.clip(difficulty[None, :] + seed_shift, 0, 1)
        m = (rng.random(p.shape) < p).astype(float)
        mean, low, high = grid_stats.bootstrap_ci(m, n_boot=800, seed=t)
        covered += low <= 0.325 <= high  # E[difficulty] = 0.325, E[shift] = 0
        widths.append(high - low)
        means.append(mean)
    assert covered / trials >= 0.9
    ideal = 2 * 1.96 * np.std(means)
    assert 0.9 * ideal <= np.mean(widths) <= 1.6 * ideal


def test_pairing_cancels_shared_problem_difficulty():
    """Arm b is arm a with some passes turned into failures: the same problems are hard for
    both. The paired interval of the difference is far narrower than two independent
    intervals imply, and contains the true difference."""
    rng = np.random.default_rng(1)
    difficulty = rng.uniform(0, 1, 60)
    a = (rng.random((4, 60)) < difficulty).astype(float)
    b = a * (rng.random(a.shape) >= 0.2)
    diff, low, high = grid_stats.paired_difference_ci(a, b, n_boot=1000)
    assert diff == pytest.approx(a.mean() - b.mean())
    _, la, ha = grid_stats.bootstrap_ci(a, n_boot=1000)
    _, lb, hb = grid_stats.bootstrap_ci(b, n_boot=1000)
    assert high - low < 0.5 * math.hypot(ha - la, hb - lb)
    assert low <= 0.2 * a.mean() <= high


def test_t_interval_equals_scipy():
    values = [0.29, 0.33, 0.27, 0.35, 0.31]
    mean, half = grid_stats.t_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                 scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (mean - half, mean + half) == pytest.approx((low, high))
    assert math.isnan(grid_stats.t_interval([0.3])[1])


def test_minimum_detectable_effect_has_the_stated_power():
    """Simulated paired experiments with a true difference equal to the MDE reject the null in
    about 80% of cases (two-sided one-sample t-test at α = 0.05)."""
    sd, n = 0.04, 5
    effect = grid_stats.minimum_detectable_effect(sd, n)
    rng = np.random.default_rng(2)
    diffs = rng.normal(effect, sd, (6000, n))
    rejected = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05
    # The formula is the usual central-t approximation of the noncentral-t power: within a few %.
    assert 0.74 <= rejected.mean() <= 0.86
    assert grid_stats.minimum_detectable_effect(sd, 1) == float("inf")


def test_seeds_needed_is_the_smallest_sufficient_count():
    sd, effect = 0.05, 0.05
    n = grid_stats.seeds_needed(sd, effect)
    assert grid_stats.minimum_detectable_effect(sd, n) <= effect
    assert grid_stats.minimum_detectable_effect(sd, n - 1) > effect
    with pytest.raises(ValueError, match="positive"):
        grid_stats.seeds_needed(sd, 0.0)
    assert grid_stats.seeds_needed(sd, 1e-4, max_seeds=50) is None


def test_a_cell_unscorable_in_one_arm_is_left_out_of_both():
    a = np.array([[1.0, 1.0, np.nan]])
    b = np.array([[0.0, 1.0, 0.0]])
    diff, low, high = grid_stats.paired_difference_ci(a, b, n_boot=300)
    assert diff == pytest.approx(0.5)  # problems 0 and 1 only, not 1.0 − 1/3
    assert low <= diff <= high
