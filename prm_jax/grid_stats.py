"""Statistics of an experiment grid: arms × seeds × held-out problems.

An arm's outcome is a matrix `passed[seed, problem]` (1 pass, 0 fail, NaN not scorable); every
arm is evaluated on the same problems, and seed s of every arm shares the prompts and sampling
seeds of seed s of the others, so arms are compared *paired* (same rows, same columns).

* `bootstrap_ci`: the two-way (seeds × problems) percentile bootstrap of the grand mean. Each
  replicate draws seeds with replacement and, independently, problems with replacement, and takes
  the mean of the drawn cells. It covers both sources of noise a reader cares about — another RL
  seed, and another draw of held-out problems — and reduces to the ordinary problem bootstrap
  for one seed. For a crossed design it is conservative (Owen 2007, "the pigeonhole
  bootstrap"): the seed × problem residual enters its variance up to three times instead of
  once; with pass/fail cells, where that residual dominates, a nominal 95% interval covers about
  98–99% and is about 1.3–1.5× too wide (`tests/test_grid_stats.py` measures both), so an
  interval that excludes 0 is a safe claim and one that includes it understates power.
* `paired_difference_ci`: the same bootstrap of mean(a) − mean(b), with one draw of seeds and
  problems applied to both arms, so shared difficulty cancels.
* `t_interval`: the Student-t interval over per-seed values (seed noise only).
* `minimum_detectable_effect`: for a paired comparison over n seeds with per-seed differences of
  standard deviation sd, the true difference a two-sided level-α test detects with the given
  power: (t_{1−α/2, n−1} + t_{power, n−1}) · sd / √n.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

N_BOOTSTRAP = 4000


def _as_matrix(passed) -> np.ndarray:
    m = np.asarray(passed, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"expected a non-empty [seeds, problems] matrix, got shape {m.shape}")
    return m


def _replicates(shape: tuple[int, int], n_boot: int, seed: int):
    """Index arrays (seeds [n_boot, S], problems [n_boot, P]) of the bootstrap draws."""
    rng = np.random.default_rng(seed)
    s, p = shape
    rows = rng.integers(0, s, (n_boot, s)) if s > 1 else np.zeros((n_boot, 1), np.int64)
    cols = rng.integers(0, p, (n_boot, p))
    return rows, cols


def _means(m: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mean of the drawn cells for every replicate (NaN cells left out)."""
    drawn = m[rows[:, :, None], cols[:, None, :]].reshape(len(rows), -1)  # [n_boot, S·P]
    counts = (~np.isnan(drawn)).sum(axis=1)
    sums = np.nansum(drawn, axis=1)
    # A draw of only unscorable cells has no mean (NaN; the percentiles leave it out).
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def grand_mean(passed) -> float:
    m = _as_matrix(passed)
    return float(np.nanmean(m))


def bootstrap_ci(passed, *, n_boot: int = N_BOOTSTRAP, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the grand mean of `passed[seed, problem]` and its two-way bootstrap
    percentile interval."""
    m = _as_matrix(passed)
    rows, cols = _replicates(m.shape, n_boot, seed)
    draws = _means(m, rows, cols)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return grand_mean(m), float(low), float(high)


def paired_difference_ci(a, b, *, n_boot: int = N_BOOTSTRAP, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high) with the same bootstrap draws applied to both arms."""
    ma, mb = _as_matrix(a), _as_matrix(b)
    if ma.shape != mb.shape:
        raise ValueError(f"paired arms need the same seeds and problems: {ma.shape} vs {mb.shape}")
    # A cell unscorable in one arm is left out of both, so every compared cell is paired.
    unpaired = np.isnan(ma) | np.isnan(mb)
    ma, mb = np.where(unpaired, np.nan, ma), np.where(unpaired, np.nan, mb)
    rows, cols = _replicates(ma.shape, n_boot, seed)
    draws = _means(ma, rows, cols) - _means(mb, rows, cols)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return grand_mean(ma) - grand_mean(mb), float(low), float(high)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the Student-t interval) of per-seed values; half-width NaN for one."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half)


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """Smallest true paired difference a two-sided level-`alpha` t-test over `n` seeds detects
    with probability `power`, when per-seed differences have standard deviation `sd`."""
    if n < 2:
        return float("inf")
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def seeds_needed(sd: float, effect: float, *, alpha: float = 0.05, power: float = 0.8,
                 max_seeds: int = 10_000) -> int:
    """Fewest seeds whose `minimum_detectable_effect` is at most `effect` (None beyond
    `max_seeds`)."""
    if effect <= 0:
        raise ValueError(f"effect must be positive, got {effect}")
    for n in range(2, max_seeds + 1):
        if minimum_detectable_effect(sd, n, alpha=alpha, power=power) <= effect:
            return n
    return None
