"""Chunked log-probs: equal to the full-logits path (values, entropy, gradients; SFT loss and RL
learner), and the compiled SFT step's temporary memory well below the full-logits step's."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from prm_jax import run_config, sharding
from prm_jax.models import CausalLM, DecoderConfig, build_model
from prm_jax.models.logprobs import LOGITS_CHUNK, chunked_logprobs, full_logprobs
from prm_jax.rl.learner import LearnerConfig, PPOLearner
from prm_jax.rl.rollout import RolloutBatch
from prm_jax.train.losses import next_token_loss
from prm_jax.train.step import abstract_train_state, lower_train_step

CONFIG = DecoderConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=1,
                       num_heads=2, num_kv_heads=1, max_position_embeddings=64,
                       tie_word_embeddings=True)
TOL = dict(rtol=1e-5, atol=2e-5)


def _close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


@pytest.mark.parametrize("t,chunk,temperature", [(12, 4, 1.0), (13, 5, 0.7), (7, 16, 1.3),
                                                 (9, 1, 1.0), (10, 3, 2.0)])
def test_chunked_equals_full_logits_values_and_gradients(t, chunk, temperature):
    b, d, v = 3, 16, 50
    k = jax.random.split(jax.random.key(t * 100 + chunk), 4)
    hidden = jax.random.normal(k[0], (b, t, d))
    unembed = jax.random.normal(k[1], (d, v)) / 2
    targets = jax.random.randint(k[2], (b, t), 0, v)
    weights = jax.random.uniform(k[3], (b, t))

    def objective(logprobs_fn):
        def f(h, w):
            logp, entropy = logprobs_fn(h, w)
            return (weights * logp).sum() + 0.3 * (weights * entropy).sum(), (logp, entropy)
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(hidden, unembed)

    full = objective(lambda h, w: full_logprobs(
        jnp.einsum("btd,dv->btv", h, w), targets, temperature=temperature, with_entropy=True))
    chunked = objective(lambda h, w: chunked_logprobs(
        h, w, targets, temperature=temperature, chunk=chunk, with_entropy=True))
    assert chunked[0][1][0].shape == (b, t) and chunked[0][1][0].dtype == jnp.float32
    _close(chunked, full)
    only_logp = chunked_logprobs(hidden, unembed, targets, temperature=temperature, chunk=chunk)
    _close(only_logp, full[0][1][0])


def test_sft_loss_and_gradients_do_not_depend_on_the_chunk():
    model = build_model(CONFIG, seed=0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, CONFIG.vocab_size, (2, 11)).astype(np.int32)
    mask = np.ones((2, 11), np.int32)
    mask[1, 8:] = 0
    batch = {"tokens": tokens, "mask": mask, "loss_mask": mask * (np.arange(11) >= 3)}
    graphdef, params = nnx.split(model, nnx.Param)

    def loss_and_grads(chunk):
        def loss(p):
            return next_token_loss(nnx.merge(graphdef, p), batch, logits_chunk=chunk)[0]
        return jax.jit(jax.value_and_grad(loss))(params)

    full = loss_and_grads(0)
    for chunk in (3, 64):
        _close(loss_and_grads(chunk), full)


def _rollout(rows=4, P=6, N=7):
    rng = np.random.default_rng(1)
    tokens = rng.integers(2, CONFIG.vocab_size, (rows, P + N)).astype(np.int32)
    attention = np.ones((rows, P + N), bool)
    attention[0, :2] = False
    mask = np.ones((rows, N), np.float32)
    mask[1, 5:] = 0
    return RolloutBatch(tokens=tokens, attention=attention, response_mask=mask,
                        group=np.arange(rows) // 2, num_groups=rows // 2, prompt_width=P,
                        response_ids=[[]] * rows, texts=["x"] * rows, stop_reasons=["eos"] * rows,
                        passed=[False] * rows, mask_reason=[None] * rows, lines=[[]] * rows,
                        reward_tokens=[[]] * rows, num_lines=[1] * rows,
                        sampler_logprobs=np.zeros((rows, N), np.float32))


def test_rl_learner_experience_and_update_do_not_depend_on_the_chunk():
    """GRPO with the KL in the loss and an entropy bonus: every log-prob path is exercised."""
    mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
    batch = _rollout()
    results = []
    for chunk in (0, 3):
        config = LearnerConfig(estimator="grpo", kl_mode="loss", kl_coef=0.1, entropy_coef=0.01,
                               temperature=0.8, policy_lr=1e-2, logits_chunk=chunk)
        learner = PPOLearner(build_model(CONFIG, seed=0), build_model(CONFIG, seed=1), mesh=mesh,
                             config=config)
        experience = learner.experience(batch)
        advantages, returns, _ = learner.advantages(
            batch, experience, {"outcome": np.linspace(-1, 1, 4)[:, None] * batch.response_mask,
                                "dense": np.zeros_like(batch.response_mask)})
        metrics = learner.update(batch, experience, advantages, returns)
        results.append((experience, metrics, jax.device_get(learner.policy_params())))
    (exp0, metrics0, params0), (exp3, metrics3, params3) = results
    assert set(exp0) == {"old_logp", "entropy", "ref_logp"}
    _close(exp3, exp0)
    _close({k: metrics3[k] for k in sorted(metrics0)}, {k: metrics0[k] for k in sorted(metrics0)})
    _close(params3, params0)


def test_compiled_sft_step_temp_memory_is_a_fraction_of_the_full_logits_step():
    """V = 32k, B·T = 1024: a full [B,T,V] float32 buffer is 134 MB and the unchunked step holds
    several; 32-position chunks hold a few [B,32,V] buffers (17 MB each) instead."""
    config = DecoderConfig(vocab_size=32768, hidden_size=64, intermediate_size=128, num_layers=1,
                           num_heads=2, num_kv_heads=1, max_position_embeddings=512,
                           tie_word_embeddings=True)
    b, t, chunk = 4, 256, 32
    tx = optax.adam(1e-3)
    graphdef, state = abstract_train_state(lambda: CausalLM(config, rngs=nnx.Rngs(0)), tx)
    batch = {"tokens": jax.ShapeDtypeStruct((b, t), jnp.int32),
             "mask": jax.ShapeDtypeStruct((b, t), jnp.int32)}

    def memory(logits_chunk):
        loss = functools.partial(next_token_loss, logits_chunk=logits_chunk)
        return lower_train_step(graphdef, state, batch, tx=tx, loss_fn=loss).compile().memory_analysis()

    full, chunked = memory(0), memory(chunk)
    logits_bytes = b * (t - 1) * config.vocab_size * 4
    assert full.temp_size_in_bytes > 2 * logits_bytes
    assert chunked.temp_size_in_bytes < logits_bytes
    assert full.temp_size_in_bytes > 5 * chunked.temp_size_in_bytes
    assert chunked.argument_size_in_bytes == full.argument_size_in_bytes


def test_config_defaults_are_chunked():
    assert run_config.LOGITS_CHUNK == LOGITS_CHUNK > 0
    assert LearnerConfig().logits_chunk == LOGITS_CHUNK
    for section in (run_config.SFTConfig, run_config.RLConfig):
        field = {f.name: f for f in dataclasses.fields(section)}["logits_chunk"]
        assert field.default == LOGITS_CHUNK
    with pytest.raises(ValueError, match="logits_chunk"):
        LearnerConfig(logits_chunk=-1)
