"""The same numbers on every mesh, and parameters really sharded as the rules say."""

import dataclasses

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from prm_jax import sharding as sharding_lib
from prm_jax.models import DecoderConfig, build_model
from prm_jax.train.losses import next_token_loss
from prm_jax.train.step import ShardedTrainer

CONFIG = DecoderConfig(model_type="qwen2", vocab_size=64, hidden_size=32, intermediate_size=64,
                       num_layers=2, num_heads=4, num_kv_heads=2, qkv_bias=True,
                       tie_word_embeddings=False)


def _batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 64, (8, 12)).astype(np.int32)
    mask = np.ones((8, 12), bool)
    mask[3, :5] = False  # one left-padded row
    return {"tokens": tokens, "mask": mask}


def _optimizer():
    # Adam maps a gradient of pure rounding noise (an unused token's row) to a ±lr step; an eps
    # well above float32 noise keeps the comparison about sharding, not about division by ~0.
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, eps=1e-4))


def _run(mesh):
    trainer = ShardedTrainer(build_model(CONFIG, seed=1), _optimizer(), mesh, next_token_loss)
    batch = _batch()
    logits = np.asarray(trainer.forward(batch["tokens"], batch["mask"]))
    metrics = trainer.step(batch)
    params = jax.tree.map(np.asarray, jax.device_get(trainer.state.params))
    return trainer, logits, float(metrics["loss"]), params


@pytest.fixture(scope="module")
def single_device():
    mesh = sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
    return _run(mesh)


def test_eight_devices_are_simulated():
    assert len(jax.devices()) == 8


@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 8, 1), (2, 2, 2)])
def test_mesh_matches_single_device(shape, single_device):
    _, ref_logits, ref_loss, ref_params = single_device
    mesh = sharding_lib.make_mesh(dict(zip(sharding_lib.MESH_AXES, shape)))
    trainer, logits, loss, params = _run(mesh)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    assert abs(loss - ref_loss) < 1e-5
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Parameters live where the rules put them.
    q = trainer.state.params["backbone"]["layers"][0]["attn"]["q_proj"][...]
    assert q.sharding.spec == P("fsdp", "tensor", None)
    d, n, h = q.shape
    assert q.addressable_shards[0].data.shape == (d // shape[1], n // shape[2], h)
    embed = trainer.state.params["backbone"]["embed"][...]
    assert embed.sharding.spec == P("tensor", "fsdp")
    down = trainer.state.params["backbone"]["layers"][1]["mlp"]["down_proj"][...]
    assert down.addressable_shards[0].data.shape == (64 // shape[2], 32 // shape[1])
    # Optimizer moments follow their parameters.
    mu = trainer.state.opt_state[1][0].mu["backbone"]["layers"][0]["attn"]["q_proj"][...]
    assert mu.sharding.is_equivalent_to(q.sharding, q.ndim)


def test_mesh_errors_are_clear():
    with pytest.raises(sharding_lib.ShardingError, match="needs 12 devices"):
        sharding_lib.make_mesh({"data": 3, "fsdp": 2, "tensor": 2})
    with pytest.raises(sharding_lib.ShardingError, match="not divisible"):
        sharding_lib.make_mesh({"data": 3, "fsdp": -1, "tensor": 1})
    with pytest.raises(sharding_lib.ShardingError, match="at most one axis"):
        sharding_lib.make_mesh({"data": -1, "fsdp": -1})
    with pytest.raises(sharding_lib.ShardingError, match="unknown mesh axes"):
        sharding_lib.make_mesh({"model": 8})
    # A vocabulary of 60 cannot be split 8 ways (heads can: they fall back to replication).
    mesh = sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 8})
    with pytest.raises(sharding_lib.ShardingError, match=r"embed dim 0 \(vocab=60\) is not divisible by mesh axis tensor=8"):
        sharding_lib.shard_model(build_model(dataclasses.replace(CONFIG, vocab_size=60)), mesh)
    mesh = sharding_lib.make_mesh({"data": 8, "fsdp": 1, "tensor": 1})
    trainer = ShardedTrainer(build_model(CONFIG), optax.sgd(0.1), mesh, next_token_loss)
    with pytest.raises(sharding_lib.ShardingError, match="batch size 6"):
        trainer.step({k: v[:6] for k, v in _batch().items()})


def test_summary_names_every_parameter_class():
    mesh = sharding_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    summary = sharding_lib.sharding_summary(build_model(CONFIG), mesh)
    assert "('embed', 'heads', 'head_dim')" in summary and "'fsdp', 'tensor'" in summary


def test_scalar_head_forward_on_a_mesh():
    """A PRM/critic (scalar head, [B,T] outputs) through ShardedTrainer and ShardedModel on a
    (2,2,2) mesh equals the unsharded model."""
    from prm_jax.models import ScalarHeadModel
    from prm_jax.models.sharded import ShardedModel

    model = ScalarHeadModel(CONFIG, rngs=__import__("flax").nnx.Rngs(2))
    batch = _batch()
    expected = np.asarray(model(batch["tokens"], mask_BxT=batch["mask"])[0])
    mesh = sharding_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    trainer = ShardedTrainer(model, _optimizer(), mesh, next_token_loss)
    values = trainer.forward(batch["tokens"], batch["mask"])
    assert values.shape == (8, 12)
    np.testing.assert_allclose(np.asarray(values), expected, atol=1e-5)
    sharded = ShardedModel(model, mesh)
    np.testing.assert_allclose(np.asarray(sharded.forward(batch["tokens"], batch["mask"])), expected,
                               atol=1e-5)
    got = sharded.values_at([[1, 2, 3], [4, 5]], [[0, 2], [1]], batch_size=4)
    ref = np.asarray(model(np.asarray([[1, 2, 3], [4, 5, 0]], np.int32),
                           mask_BxT=np.asarray([[1, 1, 1], [1, 1, 0]], bool))[0])
    np.testing.assert_allclose(got[0], ref[0, [0, 2]], atol=1e-5)
    np.testing.assert_allclose(got[1], ref[1, [1]], atol=1e-5)
    # A PRM with a likelihood term reads each row's response start, sharded like the rows.
    prm = ScalarHeadModel(CONFIG, rngs=__import__("flax").nnx.Rngs(2), likelihood_clip=8.0)
    starts = np.arange(8, dtype=np.int32) % 5
    expected = np.asarray(prm(batch["tokens"], mask_BxT=batch["mask"], response_start_B=starts)[0])
    np.testing.assert_allclose(np.asarray(ShardedModel(prm, mesh).forward(
        batch["tokens"], batch["mask"], response_start_B=starts)), expected, atol=1e-5)


# Qwen2.5-0.5B's head ratio (14 query heads, 2 KV heads) and a Llama-like one (8 and 2), small.
HEAD_LAYOUTS = {"qwen_0.5b_ratio": dict(num_heads=14, num_kv_heads=2, hidden_size=56),
                "kv_heads_below_tensor": dict(num_heads=8, num_kv_heads=2, hidden_size=32)}


@pytest.mark.parametrize("layout", sorted(HEAD_LAYOUTS))
def test_tensor_eight_with_replicated_kv_heads_matches_single_device(layout):
    """tensor=8 beyond the KV heads: KV projections replicated over `tensor` (query heads too
    when they do not divide it), MLP and vocabulary split; forward, one train step and greedy
    sampling equal one device."""
    from prm_jax.sampling import Sampler, SamplingConfig
    from prm_jax.tokenizer import load_tokenizer

    config = dataclasses.replace(CONFIG, vocab_size=1024, intermediate_size=64,
                                 **HEAD_LAYOUTS[layout])
    results = {}
    for name, mesh in [("one", sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1},
                                                        devices=jax.devices()[:1])),
                       ("tensor8", sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 8}))]:
        trainer = ShardedTrainer(build_model(config, seed=1), _optimizer(), mesh, next_token_loss)
        batch = _batch()
        logits = np.asarray(trainer.forward(batch["tokens"], batch["mask"]))
        loss = float(trainer.step(batch)["loss"])
        params = jax.tree.map(np.asarray, jax.device_get(trainer.state.params))
        sampler = Sampler(build_model(config, seed=1), load_tokenizer("builtin"), mesh=mesh)
        tokens = sampler.generate([[5, 6, 7], [9, 10]], SamplingConfig(
            temperature=0.0, max_new_tokens=12, eos_ids=())).token_ids
        results[name] = (logits, loss, params, tokens, trainer)
    (ref_logits, ref_loss, ref_params, ref_tokens, _) = results["one"]
    logits, loss, params, tokens, trainer = results["tensor8"]
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    assert abs(loss - ref_loss) < 1e-5 and tokens == ref_tokens
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    attn = trainer.state.params["backbone"]["layers"][0]["attn"]
    assert attn["k_proj"][...].sharding.spec == P("fsdp", None, None)
    q_heads = None if config.num_heads % 8 else "tensor"
    assert attn["q_proj"][...].sharding.spec == P("fsdp", q_heads, None)
    # The MLP and the vocabulary are still split 8 ways.
    down = trainer.state.params["backbone"]["layers"][0]["mlp"]["down_proj"][...]
    assert down.addressable_shards[0].data.shape == (64 // 8, config.hidden_size)
    assert trainer.state.params["backbone"]["embed"][...].sharding.spec == P("tensor", "fsdp")
