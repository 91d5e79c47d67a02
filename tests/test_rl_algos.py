"""RL maths against NumPy ports of the reference implementations (verl core_algos, PRIME)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prm_jax.rl import algos


# --------------------------------------------------------------------- NumPy oracles
def np_masked_mean(x, m, axis=None):
    return (x * m).sum(axis=axis) / (m.sum(axis=axis) + 1e-8)


def np_whiten(x, m):
    mu = np_masked_mean(x, m)
    var = np_masked_mean((x - mu) ** 2, m)
    n = m.sum()
    return (x - mu) / np.sqrt(var * n / (n - 1) + 1e-8) * m


def np_gae(r, v, m, gamma, lam):  # verl compute_gae_advantage_return
    B, T = r.shape
    nv, last, A = np.zeros(B), np.zeros(B), np.zeros((B, T))
    for t in reversed(range(T)):
        new = r[:, t] + gamma * nv - v[:, t] + gamma * lam * last
        nv = v[:, t] * m[:, t] + (1 - m[:, t]) * nv
        last = new * m[:, t] + (1 - m[:, t]) * last
        A[:, t] = last
    return A * m, (A + v) * m


def np_policy_loss(lp, old, A, m, el=0.2, eh=0.2, c=3.0):
    rho = np.exp(np.clip(lp - old, -20, 20))
    l1, l2 = -A * rho, -A * np.clip(rho, 1 - el, 1 + eh)
    lc = np.maximum(l1, l2)
    L = np.where(A < 0, np.minimum(-A * c, lc), lc)
    return np_masked_mean(L, m), np_masked_mean((l2 > l1).astype(float), m)


def np_value_loss(vp, vold, R, m, eps=0.5):
    vc = np.clip(vp, vold - eps, vold + eps)
    return 0.5 * np_masked_mean(np.maximum((vp - R) ** 2, (vc - R) ** 2), m)


def np_scorable_groups(m, group):
    """Index lists of the scorable samples of each group with at least two of them."""
    scorable = m.sum(-1) > 0
    for g in set(group.tolist()):
        idx = [i for i in range(len(group)) if group[i] == g and scorable[i]]
        if len(idx) >= 2:
            yield idx


def np_grpo(r, m, group, eps=1e-6):
    scores, adv = (r * m).sum(-1), np.zeros(len(group))
    for idx in np_scorable_groups(m, group):
        s = scores[idx]
        adv[idx] = (s - s.mean()) / (s.std(ddof=1) + eps)
    return adv[:, None] * m


def np_rloo(r, m, group):
    scores, adv = (r * m).sum(-1), np.zeros(len(group))
    for idx in np_scorable_groups(m, group):
        for i in idx:
            adv[i] = scores[i] - np.mean([scores[j] for j in idx if j != i])
    return adv[:, None] * m


def np_prime(r, at, m, group):  # PRIME recipe compute_rloo_advantage_return, one reward source
    """`masked_rloo` over the source's reward entries `at`, then returns-to-go over the response."""
    at = at * m
    out = np.zeros(r.shape)
    means = np.array([r[i][at[i] > 0].mean() if at[i].any() else 0.0 for i in range(len(r))])
    for idx in np_scorable_groups(m, group):
        n = len(idx)
        for i in idx:
            out[i] = (r[i] * n / (n - 1) - means[idx].sum() / (n - 1)) * at[i]
    return np.flip(np.cumsum(np.flip(out, -1), -1), -1) * m


def _batch(seed=0, B=5, T=9):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(B, T)).astype(np.float32)
    v = rng.normal(size=(B, T)).astype(np.float32)
    m = np.ones((B, T), np.float32)
    m[1, 6:] = 0  # ends early
    m[2, [2, 5]] = 0  # interleaved
    m[3, :] = 0  # masked sample
    return r, v, m


# --------------------------------------------------------------------- tests
@pytest.mark.parametrize("gamma, lam", [(0.9, 0.7), (1.0, 1.0), (1.0, 0.95)])
def test_gae_matches_verl(gamma, lam):
    r, v, m = _batch()
    adv, ret = jax.jit(algos.gae, static_argnums=(3, 4))(r, v, m, gamma, lam)
    ref_adv, ref_ret = np_gae(r, v, m, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, atol=1e-5)
    if gamma == lam == 1.0:  # returns are the reward-to-go on prefix masks
        togo = np.flip(np.cumsum(np.flip(r * m, -1), -1), -1)
        np.testing.assert_allclose(ret[0], togo[0], atol=1e-5)
        np.testing.assert_allclose(ret[1, :6], togo[1, :6], atol=1e-5)


def test_whitening_uses_valid_tokens_only():
    r, _, m = _batch(1)
    np.testing.assert_allclose(algos.masked_whiten(r, m), np_whiten(r, m), atol=1e-5)
    out = np.asarray(algos.masked_whiten(r, m))
    assert abs(out[m > 0].mean()) < 1e-5 and abs(out[m > 0].std(ddof=1) - 1) < 1e-3
    assert (out[m == 0] == 0).all()


def test_policy_loss_and_gradients():
    rng = np.random.default_rng(2)
    lp, old = rng.normal(size=(4, 7)) * 0.3, rng.normal(size=(4, 7)) * 0.3
    A = rng.normal(size=(4, 7))
    _, _, m = _batch(2, 4, 7)
    loss, metrics = algos.ppo_policy_loss(lp, old, A, m)
    ref_loss, ref_clip = np_policy_loss(lp, old, A, m)
    assert float(loss) == pytest.approx(ref_loss, abs=1e-6)
    assert float(metrics["pg_clipfrac"]) == pytest.approx(ref_clip, abs=1e-6)
    grad = np.asarray(jax.grad(lambda x: algos.ppo_policy_loss(x, old, A, m)[0])(lp))
    ratio = np.exp(lp - old)
    active = ((A > 0) & (ratio > 1.2)) | ((A < 0) & (ratio < 0.8))
    assert (grad[active & (m > 0)] == 0).all() and (grad[~active & (m > 0)] != 0).all()
    # Dual clip: a huge ratio with a negative advantage costs at most −c·A.
    big, _ = algos.ppo_policy_loss(jnp.full((1, 1), 5.0), jnp.zeros((1, 1)), -jnp.ones((1, 1)),
                                   jnp.ones((1, 1)))
    assert float(big) == pytest.approx(3.0)


def test_value_loss():
    rng = np.random.default_rng(3)
    vp, vold, R = (rng.normal(size=(4, 6)) for _ in range(3))
    _, _, m = _batch(3, 4, 6)
    loss, _ = algos.clipped_value_loss(vp, vold, R, m)
    assert float(loss) == pytest.approx(np_value_loss(vp, vold, R, m), abs=1e-6)


def test_kl_estimators_values_and_bias():
    rng = np.random.default_rng(4)
    lp, ref = rng.normal(size=10), rng.normal(size=10)
    d = lp - ref
    np.testing.assert_allclose(algos.kl_penalty(lp, ref, "k1"), d, atol=1e-6)
    np.testing.assert_allclose(algos.kl_penalty(lp, ref, "k2"), 0.5 * d * d, atol=1e-6)
    np.testing.assert_allclose(algos.kl_penalty(lp, ref, "k3"), np.exp(-d) + d - 1, atol=1e-5)
    # Monte Carlo: k1 and k3 are unbiased estimates of KL(p‖q) for samples from p.
    p = np.array([0.5, 0.3, 0.15, 0.05])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    kl = float((p * np.log(p / q)).sum())
    x = rng.choice(4, size=200_000, p=p)
    for kind in ("k1", "k3"):
        est = np.asarray(algos.kl_penalty(np.log(p[x]), np.log(q[x]), kind))
        assert abs(est.mean() - kl) < 3 * est.std() / np.sqrt(len(x)) + 1e-4, kind
    assert (np.asarray(algos.kl_penalty(lp, ref, "k3")) >= 0).all()
    with pytest.raises(ValueError, match="unknown KL"):
        algos.kl_penalty(lp, ref, "k9")


def test_group_estimators_match_ports():
    r, _, m = _batch(5, B=8, T=6)
    group = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    m[6] = 0  # group 2 keeps one scorable sample: advantage 0
    for fn, ref in ((algos.grpo_advantages, np_grpo), (algos.rloo_advantages, np_rloo)):
        got = np.asarray(fn(r, m, group, 3))
        np.testing.assert_allclose(got, ref(r, m, group), atol=1e-4, err_msg=fn.__name__)
        assert (got[7] == 0).all() and (got[3] == 0).all(), fn.__name__
    at = (np.random.default_rng(6).random(r.shape) < 0.4).astype(np.float32)
    at[0] = 0  # a sample with no reward entry: mean 0, still in its group
    got = np.asarray(algos.prime_rloo_returns(r, at, m, group, 3))
    np.testing.assert_allclose(got, np_prime(r, at, m, group), atol=1e-4)
    assert (got[7] == 0).all() and (got[3] == 0).all()


def test_prime_outcome_is_rloo_at_every_token_whatever_the_length():
    """With the outcome as its one entry on the last token, the PRIME estimator is RLOO on the
    sequence reward, R_i − mean_{j≠i} R_j, at every token: no length or position dependence (a
    baseline taken per token would penalise a long passing response)."""
    lengths, passed = [2, 9, 5, 9], [1.0, 1.0, 0.0, 0.0]
    B, T = len(lengths), 9
    m = np.zeros((B, T), np.float32)
    r = np.zeros((B, T), np.float32)
    at = np.zeros((B, T), np.float32)
    for i, (n, p) in enumerate(zip(lengths, passed)):
        m[i, :n] = 1
        r[i, n - 1] = p
        at[i, n - 1] = 1
    got = np.asarray(algos.prime_rloo_returns(r, at, m, np.zeros(B, np.int32), 1))
    for i, n in enumerate(lengths):
        loo = passed[i] - np.mean([passed[j] for j in range(B) if j != i])
        np.testing.assert_allclose(got[i, :n], loo, atol=1e-6)
        assert (got[i, n:] == 0).all()
    np.testing.assert_allclose(got[:, 0], np.asarray(algos.rloo_advantages(r, m, np.zeros(B, np.int32), 1))[:, 0],
                               atol=1e-6)


def test_all_failing_group_outcome_only_is_zero_but_dense_separates():
    """Every sample fails (outcome 0): outcome-only group advantages vanish; dense rewards on the
    first line's token still rank a good first line above a bad one."""
    B, T = 4, 5
    m = np.ones((B, T), np.float32)
    outcome = np.zeros((B, T), np.float32)
    dense = np.zeros((B, T), np.float32)
    dense[:2, 1] = 0.125  # good first line
    dense[2:, 1] = -0.125  # bad first line
    group = np.zeros(B, np.int32)
    outcome_at = np.zeros((B, T), np.float32)
    outcome_at[:, -1] = 1
    dense_at = np.zeros((B, T), np.float32)
    dense_at[:, 1] = 1
    parts = {"outcome": outcome, "dense": np.zeros_like(dense), "kl": np.zeros_like(dense),
             "outcome_at": outcome_at, "dense_at": dense_at}
    for name in ("grpo", "rloo"):
        adv, _ = algos.ESTIMATORS[name](parts, None, m, group, 1, gamma=1.0, lam=1.0, whiten=False)
        assert np.abs(np.asarray(adv)).max() == 0
    parts["dense"] = dense
    for name in ("grpo", "rloo"):
        adv, _ = algos.ESTIMATORS[name](parts, None, m, group, 1, gamma=1.0, lam=1.0, whiten=False)
        adv = np.asarray(adv)
        assert (adv[:2, 0] > 0).all() and (adv[2:, 0] < 0).all(), name
    adv, _ = algos.ESTIMATORS["gae"](parts, np.zeros((B, T), np.float32), m, group, 1,
                                     gamma=1.0, lam=1.0, whiten=True)
    adv = np.asarray(adv)
    assert (adv[:2, 0] > 0).all() and (adv[2:, 0] < 0).all()
