"""Stage `model_check`: build → shard → forward → a few training steps → HF export → reload.

It exercises every piece of the model stack end to end on the configured model and reports
parameter count, sharding, step time, loss curve and the export round-trip error.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
import optax
from absl import logging

from prm_jax import sharding
from prm_jax.stages.context import StageContext
from prm_jax.models import count_params, load_pretrained, save_pretrained
from prm_jax.models.factory import model_from_config
from prm_jax.stages import common
from prm_jax.tokenizer import ASSETS
from prm_jax.train.losses import next_token_loss
from prm_jax.train.step import ShardedTrainer


def code_windows(tokenizer, batch_size: int, seq_len: int, seed: int) -> dict:
    """A batch of `seq_len` windows of the bundled Python corpus (tokens + all-true mask)."""
    with open(os.path.join(ASSETS, "tokenizer_corpus.txt")) as f:
        ids = np.asarray(tokenizer(f.read())["input_ids"], np.int32)
    if len(ids) <= seq_len:
        ids = np.tile(ids, seq_len // len(ids) + 2)
    starts = np.random.default_rng(seed).integers(0, len(ids) - seq_len, batch_size)
    tokens = np.stack([ids[s:s + seq_len] for s in starts])
    return {"tokens": tokens, "mask": np.ones_like(tokens, bool)}


def run(ctx: StageContext) -> dict:
    config = ctx.config
    """Writes the trained model to workdir/export and returns what it measured."""
    tokenizer = ctx.tokenizer
    mesh = ctx.mesh
    mc = config.model_check
    model = model_from_config(config, tokenizer, mesh=mesh)
    n_params = count_params(model)
    summary = sharding.sharding_summary(model, mesh)
    print(f"model: {model.config.model_type}, {n_params:,d} parameters, "
          f"{model.config.num_layers} layers, d={model.config.hidden_size}")
    print(summary)

    tx = optax.adamw(mc.learning_rate)
    trainer = ShardedTrainer(model, tx, mesh, next_token_loss)
    batch = code_windows(tokenizer, mc.batch_size, mc.seq_len, config.seed)
    logits = trainer.forward(batch["tokens"], batch["mask"])
    if not bool(np.isfinite(np.asarray(logits)).all()):
        raise FloatingPointError("forward pass produced non-finite logits")

    losses, step_times = [], []
    for step in range(mc.train_steps):
        start = time.perf_counter()
        metrics = jax.device_get(trainer.step(batch))
        step_times.append(time.perf_counter() - start)
        losses.append(float(metrics["loss"]))
        if step % 5 == 0 or step == mc.train_steps - 1:
            print(f"step {step:4d}  loss {losses[-1]:.4f}  grad_norm {float(metrics['grad_norm']):.3f}"
                  f"  {step_times[-1]:.3f}s")

    export_dir = os.path.join(config.workdir, "export")
    trained = trainer.model()
    save_pretrained(trained, export_dir, tokenizer=tokenizer)
    reloaded = load_pretrained(export_dir, dtype=model.config.dtype,
                               param_dtype=model.config.param_dtype)
    probe = {k: v[:1] for k, v in batch.items()}
    a, _ = trained(probe["tokens"], mask_BxT=probe["mask"])
    b, _ = reloaded(probe["tokens"], mask_BxT=probe["mask"])
    export_err = float(np.abs(np.asarray(a) - np.asarray(b)).max())
    print(f"export: {export_dir}  reload max |Δlogits| = {export_err:.2e}")
    logging.info("model_check done")
    return {
        "parameters": n_params,
        "mesh": dict(mesh.shape),
        "devices": [str(d) for d in mesh.devices.flat],
        "sharding": summary,
        "losses": losses,
        "step_time_s_median": float(np.median(step_times[1:] or step_times)),
        "compile_and_first_step_s": step_times[0] if step_times else None,
        "export_dir": export_dir,
        "export_max_abs_err": export_err,
    }
