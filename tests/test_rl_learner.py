"""The PPO learner: first-step identities, critic initialisation from the PRM, masking,
sharding/micro-batch invariance, and a KL-regularised bandit that reaches its closed-form optimum."""

import jax
import numpy as np
import pytest
from flax import nnx

from prm_jax import sharding
from prm_jax.models import DecoderConfig, ScalarHeadModel, build_model
from prm_jax.rl import algos
from prm_jax.rl.critic_init import fit_affine, init_critic
from prm_jax.rl.learner import LearnerConfig, PPOLearner
from prm_jax.rl.rollout import RolloutBatch
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.tokenizer import load_tokenizer

CONFIG = DecoderConfig(vocab_size=1024, hidden_size=32, intermediate_size=64, num_layers=1,
                       num_heads=4, num_kv_heads=2, max_position_embeddings=256,
                       tie_word_embeddings=True)


def _mesh(devices=1, shape=None):
    return sharding.make_mesh(shape or {"data": 1, "fsdp": 1, "tensor": 1},
                              devices=jax.devices()[:devices])


def _params(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def _batch(rows=8, P=16, N=8, seed=0, masked_rows=()):
    """A synthetic rollout batch: random prompts (left-padded) and responses (right-padded)."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((rows, P + N), np.int32)
    attention = np.zeros((rows, P + N), bool)
    mask = np.zeros((rows, N), np.float32)
    for r in range(rows):
        p, n = int(rng.integers(3, P)), int(rng.integers(2, N + 1))
        tokens[r, P - p:P + n] = rng.integers(2, 1024, p + n)
        attention[r, P - p:P + n] = True
        if r not in masked_rows:
            mask[r, :n] = 1
    return RolloutBatch(tokens=tokens, attention=attention, response_mask=mask,
                        group=np.arange(rows) // 2, num_groups=rows, prompt_width=P,
                        response_ids=[[]] * rows, texts=["x"] * rows, stop_reasons=["eos"] * rows,
                        passed=[False] * rows, mask_reason=[None] * rows, lines=[[]] * rows,
                        reward_tokens=[[]] * rows, num_lines=[1] * rows,
                        sampler_logprobs=np.zeros((rows, N), np.float32))


def _learner(mesh, config=None, seed=0):
    policy = build_model(CONFIG, seed=seed)
    reference = build_model(CONFIG, seed=seed)
    prm = build_model(CONFIG, head="scalar", seed=seed + 1)
    critic = init_critic("prm", prm=prm)
    config = config or LearnerConfig(policy_lr=1e-2, critic_lr=1e-2)
    return PPOLearner(policy, reference, critic=critic, prm=prm, mesh=mesh, config=config), prm


def _one_update(learner, batch, seed=1):
    exp = learner.experience(batch)
    rng = np.random.default_rng(seed)
    parts = {"outcome": rng.normal(size=batch.response_mask.shape).astype(np.float32) * batch.response_mask,
             "dense": np.zeros_like(batch.response_mask)}
    adv, returns, _ = learner.advantages(batch, exp, parts)
    return learner.update(batch, exp, adv, returns), exp, adv


def test_first_update_has_ratio_one_and_matches_the_sampler():
    learner, _ = _learner(_mesh())
    metrics, exp, _ = _one_update(learner, _batch())
    assert metrics["pg_clipfrac"] == 0 and abs(metrics["ppo_kl"]) < 1e-7
    assert metrics["ratio_max"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["ratio_min"] == pytest.approx(1.0, abs=1e-6)
    # The trainer's recomputed log-probs equal the sampler's (temperature 1).
    tok = load_tokenizer()
    policy = build_model(CONFIG, seed=0)
    out = Sampler(policy, tok).generate(["def f(x):\n"], SamplingConfig(n=4, max_new_tokens=8, eos_ids=()), seed=3)
    from prm_jax.rl.rewards import RewardConfig
    from prm_jax.rl.rollout import build_rollout
    ids = Sampler(policy, tok).encode(["def f(x):\n"])
    batch = build_rollout(ids, out, [False] * 4, max_new_tokens=8, reward_config=RewardConfig())
    fresh, _ = _learner(_mesh())
    exp = fresh.experience(batch)
    m = batch.response_mask > 0
    np.testing.assert_allclose(exp["old_logp"][m], batch.sampler_logprobs[m], atol=1e-4)


def test_critic_from_prm_equals_prm_and_does_not_alias():
    prm = build_model(CONFIG, head="scalar", seed=5)
    critic = init_critic("prm", prm=prm)
    tokens = np.random.default_rng(0).integers(0, 1024, (2, 12)).astype(np.int32)
    mask = np.ones((2, 12), bool)
    np.testing.assert_array_equal(np.asarray(critic(tokens, mask_BxT=mask)[0]),
                                  np.asarray(prm(tokens, mask_BxT=mask)[0]))
    affine = init_critic("prm_affine", prm=prm, affine=(0.5, 0.5))
    np.testing.assert_allclose(np.asarray(affine(tokens, mask_BxT=mask)[0]),
                               0.5 * np.asarray(prm(tokens, mask_BxT=mask)[0]) + 0.5, atol=1e-6)
    # V_t is read at P + t − 1: the PRM score at line-end token j is the critic's V_{j+1}.
    learner, prm_used = _learner(_mesh())
    batch = _batch()
    exp = learner.experience(batch)
    np.testing.assert_allclose(exp["values"][:, 1:], exp["prm"][:, :-1], atol=1e-6)
    before = _params(nnx.state(prm_used, nnx.Param))
    _one_update(learner, batch)
    after = _params(nnx.state(prm_used, nnx.Param))
    assert all((a == b).all() for a, b in zip(before, after))
    assert not all((a == b).all() for a, b in zip(
        _params(learner.critic.state.params), _params(learner.prm.params)))
    a, c = fit_affine(np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 3.0, 5.0]]), np.ones((1, 3)))
    assert (a, c) == pytest.approx((2.0, 1.0))
    with pytest.raises(ValueError, match="critic_init"):
        init_critic("random", prm=prm)


def test_a_masked_sample_changes_nothing():
    batch = _batch(rows=8, masked_rows=(7,))
    small = _batch(rows=8)
    small.response_mask[7] = 0  # same as batch: row 7 masked
    # Reference: the same batch where row 7 is masked by an infrastructure error...
    a, _ = _learner(_mesh())
    _one_update(a, batch)
    # ...versus one where row 7 holds an entirely different (still masked) sample.
    other = _batch(rows=8, seed=9, masked_rows=(7,))
    other.tokens[:7], other.attention[:7], other.response_mask[:7] = (
        batch.tokens[:7], batch.attention[:7], batch.response_mask[:7])
    b, _ = _learner(_mesh())
    _one_update(b, other)
    for x, y in zip(_params(a.policy.state.params), _params(b.policy.state.params)):
        np.testing.assert_allclose(x, y, atol=1e-6)
    for x, y in zip(_params(a.critic.state.params), _params(b.critic.state.params)):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_sharding_and_micro_batches_do_not_change_the_update():
    batch = _batch(rows=8, seed=4)
    base, _ = _learner(_mesh())
    _one_update(base, batch)
    sharded, _ = _learner(_mesh(8, {"data": 2, "fsdp": 2, "tensor": 2}))
    _one_update(sharded, batch)
    micro, _ = _learner(_mesh(), LearnerConfig(policy_lr=1e-2, critic_lr=1e-2, micro_batches=4))
    _one_update(micro, batch)
    for other in (sharded, micro):
        for x, y in zip(_params(base.policy.state.params), _params(other.policy.state.params)):
            np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-3)
        for x, y in zip(_params(base.critic.state.params), _params(other.critic.state.params)):
            np.testing.assert_allclose(x, y, atol=1e-5, rtol=1e-3)


def _bandit(beta, iterations, seed=0):
    """One-token responses to a fixed prompt; reward r(a) on 8 actions (tokens 2..9; any other
    token earns −1). Returns (π over the 8 actions, π_ref over them, π*)."""
    config = DecoderConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_layers=1,
                           num_heads=2, num_kv_heads=1, max_position_embeddings=32)
    policy, reference = build_model(config, seed=seed), build_model(config, seed=seed)
    critic = ScalarHeadModel.from_backbone(policy, rngs=nnx.Rngs(0), copy_head=False)
    learner = PPOLearner(policy, reference, critic=critic, mesh=_mesh(), config=LearnerConfig(
        kl_coef=beta, policy_lr=0.05, critic_lr=0.05, whiten=True))
    reward = np.full(16, -1.0)
    reward[2:10] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.1, 0.3]
    P, rows = 16, 256
    rng = np.random.default_rng(seed)

    def probs(params, graphdef):
        logits = nnx.merge(graphdef, params)(np.ones((1, P), np.int32), mask_BxT=np.ones((1, P), bool))[0]
        return np.asarray(jax.nn.softmax(logits[0, -1]))

    ref_p = probs(learner.reference.params, learner.reference.graphdef)
    for it in range(iterations):
        p = probs(learner.policy.state.params, learner.policy.graphdef)
        actions = rng.choice(16, size=rows, p=p / p.sum())
        tokens = np.ones((rows, P + 1), np.int32)
        tokens[:, P] = actions
        batch = RolloutBatch(
            tokens=tokens, attention=np.ones((rows, P + 1), bool),
            response_mask=np.ones((rows, 1), np.float32), group=np.zeros(rows, np.int32),
            num_groups=1, prompt_width=P, response_ids=[[a] for a in actions], texts=["x"] * rows,
            stop_reasons=["length"] * rows, passed=[False] * rows, mask_reason=[None] * rows,
            lines=[[]] * rows, reward_tokens=[[]] * rows, num_lines=[1] * rows,
            sampler_logprobs=np.zeros((rows, 1), np.float32))
        exp = learner.experience(batch)
        parts = {"outcome": reward[actions][:, None].astype(np.float32),
                 "dense": np.zeros((rows, 1), np.float32)}
        adv, returns, _ = learner.advantages(batch, exp, parts)
        learner.update(batch, exp, adv, returns, seed=it)
    p = probs(learner.policy.state.params, learner.policy.graphdef)
    target = ref_p * np.exp(reward / beta) if beta else None
    return p, ref_p, (target / target.sum() if beta else None), reward


def test_kl_regularised_bandit_reaches_the_closed_form_optimum():
    p, ref_p, target, _ = _bandit(beta=0.5, iterations=120)
    assert 0.5 * np.abs(p - target).sum() < 0.05, (p.round(3), target.round(3))
    assert 0.5 * np.abs(ref_p - target).sum() > 0.15  # the optimum is far from the start


def test_bandit_without_kl_finds_the_best_action():
    p, _, _, reward = _bandit(beta=0.0, iterations=60)
    assert p[int(np.argmax(reward))] > 0.9


def test_rescale_critic_to_fitted_affine():
    learner, _ = _learner(_mesh())
    batch = _batch()
    before = learner.experience(batch)["values"]
    learner.rescale_critic(0.5, 0.25)
    after = learner.experience(batch)["values"]
    np.testing.assert_allclose(after, 0.5 * before + 0.25, atol=1e-5)
    m = batch.response_mask
    a, c = fit_affine(before, 2.0 * before - 1.0, m)
    assert (a, c) == pytest.approx((2.0, -1.0), abs=1e-4)
