"""Recomputing each block in the backward pass (`DecoderConfig.remat`) changes memory, not
results; every model a run loads gets the run's dtypes and remat."""

import dataclasses
import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from prm_jax.models import CausalLM, DecoderConfig, build_model, save_pretrained
from prm_jax.models.factory import load_run_model
from prm_jax.train.losses import next_token_loss
from prm_jax.train.step import abstract_train_state, lower_train_step

CONFIG = DecoderConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_layers=3,
                       num_heads=4, num_kv_heads=2, max_position_embeddings=512)


def _loss_and_grads(config):
    model = build_model(config, seed=0)
    rng = np.random.default_rng(0)
    batch = {"tokens": rng.integers(0, 97, (3, 20)).astype(np.int32), "mask": np.ones((3, 20), bool)}
    graphdef, params = nnx.split(model, nnx.Param)
    loss = lambda p: next_token_loss(nnx.merge(graphdef, p), batch)[0]
    return jax.jit(jax.value_and_grad(loss))(params)


def test_remat_gives_the_same_loss_and_gradients():
    (loss, grads), (loss_r, grads_r) = _loss_and_grads(CONFIG), _loss_and_grads(
        dataclasses.replace(CONFIG, remat=True))
    np.testing.assert_allclose(loss, loss_r, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _step_temp_bytes(config) -> int:
    tx = optax.adamw(1e-3)
    graphdef, state = abstract_train_state(lambda: CausalLM(config, rngs=nnx.Rngs(0)), tx)
    spec = jax.ShapeDtypeStruct((8, 256), jnp.int32)
    lowered = lower_train_step(graphdef, state, {"tokens": spec, "mask": spec}, tx=tx,
                               loss_fn=functools.partial(next_token_loss, logits_chunk=64))
    return lowered.compile().memory_analysis().temp_size_in_bytes


def test_remat_cuts_the_training_steps_activation_memory():
    """Compiled temp memory of an 8-layer step, in a process whose XLA:CPU uses its sequential
    (memory-aware) scheduler: the default concurrency-optimised one hoists the recomputation
    next to the forward pass and so keeps every activation alive anyway. GPU and TPU
    schedulers are memory-aware by default."""
    script = (
        "import dataclasses, json, test_remat as t; "
        "deep = dataclasses.replace(t.CONFIG, num_layers=8, hidden_size=64, intermediate_size=256); "
        "print(json.dumps([t._step_temp_bytes(deep), "
        "t._step_temp_bytes(dataclasses.replace(deep, remat=True))]))")
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_cpu_enable_concurrency_optimized_scheduler=false",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    full, remat = json.loads(out.stdout.strip().splitlines()[-1])
    assert remat < 0.4 * full, (remat, full)


def test_stages_load_checkpoints_with_the_runs_dtypes_and_remat(tmp_path):
    save_pretrained(build_model(CONFIG, seed=0), str(tmp_path))
    config = ml_collections.ConfigDict({"model": {"dtype": "bfloat16", "remat": True}})
    model = load_run_model(config, str(tmp_path), head="scalar")
    assert model.config.dtype == "bfloat16" and model.config.remat
    assert model.config.param_dtype == "float32"
    assert "remat" not in model.config.to_hf_dict()
