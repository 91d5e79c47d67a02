"""The supervised loop: SFT learns, a killed run resumes to the same parameters, metrics logged."""

import json

import jax
import numpy as np
import pytest

from prm_jax import sharding
from prm_jax.data import synthetic
from prm_jax.models import DecoderConfig, build_model
from prm_jax.tokenizer import load_tokenizer
from prm_jax.train.examples import sft_examples
from prm_jax.train.loop import LoopConfig, train

CONFIG = DecoderConfig(vocab_size=1024, hidden_size=32, intermediate_size=64, num_layers=1,
                       num_heads=2, num_kv_heads=1, max_position_embeddings=256,
                       tie_word_embeddings=True)


@pytest.fixture(scope="module")
def examples():
    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=40, max_horizon=2))
    out, skipped = sft_examples(problems, load_tokenizer(), seq_len=128)
    assert skipped == 0 and len(out) == 40
    e = out[0]
    assert e["loss_mask"].sum() > 0 and e["loss_mask"][e["mask"] == 0].sum() == 0
    return out


def _mesh():
    return sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])


def _params(model):
    from flax import nnx
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_killed_run_resumes_to_the_same_result(examples, tmp_path):
    config = LoopConfig(steps=12, batch_size=4, learning_rate=3e-3, warmup_steps=2,
                        checkpoint_every=4, log_every=1)
    full, metrics = train(build_model(CONFIG, seed=0), examples, loss="next_token", config=config,
                          mesh=_mesh(), workdir=str(tmp_path / "a"), name="sft")
    # Killed after 6 steps (last checkpoint at 4), then re-run to completion.
    train(build_model(CONFIG, seed=0), examples, loss="next_token", config=config, mesh=_mesh(),
          workdir=str(tmp_path / "b"), name="sft", stop_after=6)
    resumed, _ = train(build_model(CONFIG, seed=0), examples, loss="next_token", config=config,
                       mesh=_mesh(), workdir=str(tmp_path / "b"), name="sft")
    for a, b in zip(_params(full), _params(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "a" / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["sft/loss"] for r in rows if "sft/loss" in r]
    assert losses[-1] < losses[0]
    assert (tmp_path / "a" / "sft" / "tb").is_dir()
    assert metrics["steps"] == 12


def test_bad_loop_arguments(examples, tmp_path):
    with pytest.raises(ValueError, match="unknown loss"):
        train(build_model(CONFIG), examples, loss="hinge", config=LoopConfig(steps=1, batch_size=2),
              mesh=_mesh(), workdir=str(tmp_path), name="x")
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(build_model(CONFIG), examples[:2], loss="next_token",
              config=LoopConfig(steps=1, batch_size=4), mesh=_mesh(), workdir=str(tmp_path), name="y")


def test_non_finite_loss_stops_the_run(examples, tmp_path):
    from prm_jax.train.losses import next_token_loss
    from prm_jax.train.loop import NonFiniteLossError

    def exploding(model, batch):
        loss, metrics = next_token_loss(model, batch)
        loss = loss * jax.numpy.where(batch["tokens"][0, 0] >= 0, jax.numpy.nan, 1.0)
        return loss, dict(metrics, loss=loss)

    config = LoopConfig(steps=10, batch_size=4, checkpoint_every=2, log_every=1)
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 1"):
        train(build_model(CONFIG), examples, loss=exploding, config=config, mesh=_mesh(),
              workdir=str(tmp_path), name="nan")
