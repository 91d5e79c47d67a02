"""The supervised loop shared by SFT and PRM training.

One jitted, sharded step (`ShardedTrainer`, a loss callable or a name from `LOSSES`), AdamW with
linear warm-up and cosine decay, global-norm clipping, a grain data iterator (shuffled, repeated,
sharded by process), orbax checkpoints that hold parameters, optimizer state, step and the data
iterator state — so a killed run resumes onto the same trajectory — JSONL + TensorBoard metrics,
a progress bar with ETA and periodic evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from typing import Callable, Iterable, Sequence

import grain.python as grain
import jax
import optax

from prm_jax import distributed
from prm_jax.jsonio import read_jsonl, write_jsonl_atomic
from prm_jax.progress import progress_bar
from prm_jax.train import losses
from prm_jax.train.checkpoint import Checkpointer, abstract_like
from prm_jax.train.step import LossFn, ShardedTrainer

LOSSES = {
    "next_token": losses.next_token_loss,
    "prm_mse": losses.prm_mse_loss,
    "prm_mse_pair": losses.prm_mse_pair_loss,
    "prm_bce": losses.prm_bce_loss,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    steps: int
    batch_size: int
    learning_rate: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    checkpoint_every: int = 100
    eval_every: int = 0  # 0 = only at the end
    log_every: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


def make_optimizer(config: LoopConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """clip(global norm) → AdamW with warm-up to `learning_rate`, then cosine decay to 10%."""
    warmup = min(config.warmup_steps, max(1, config.steps - 1))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=config.learning_rate, warmup_steps=warmup,
        decay_steps=max(config.steps, warmup + 1), end_value=0.1 * config.learning_rate)
    tx = optax.chain(optax.clip_by_global_norm(config.clip_norm),
                     optax.adamw(schedule, weight_decay=config.weight_decay))
    return tx, schedule


class MetricsWriter:
    """Appends metrics to `metrics.jsonl` and TensorBoard under `tb/`, each step exactly once.

    A run resumed from step s first drops every logged row with step > s (written after the
    checkpoint it resumes from) and rebuilds `tb/` from the kept rows, so curves never hold a
    step twice. `resume_step=0` starts both afresh. With several JAX processes only process 0
    writes (all of them compute the same metrics); the others read the kept rows only.
    """

    def __init__(self, workdir: str, prefix: str, resume_step: int = 0):
        from tensorboardX import SummaryWriter

        self.prefix = prefix
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.primary = jax.process_index() == 0
        self.kept = self._truncate(resume_step)
        if not self.primary:
            return
        tb_dir = os.path.join(workdir, "tb")
        shutil.rmtree(tb_dir, ignore_errors=True)
        self.tb = SummaryWriter(tb_dir)
        for row in self.kept:
            self._add_scalars(row)

    def _truncate(self, resume_step: int) -> list[dict]:
        rows = []
        if resume_step > 0 and os.path.exists(self.path):
            rows = [r for r in read_jsonl(self.path, "metrics file") if r["step"] <= resume_step]
        if self.primary:
            write_jsonl_atomic(self.path, rows)
        return rows

    def last(self) -> dict:
        """The latest logged training metrics (prefix removed), e.g. after a resume that ran no step."""
        for row in reversed(self.kept):
            if "loss" in {k.split("/", 1)[-1] for k in row}:
                return {k.split("/", 1)[1]: v for k, v in row.items() if "/" in k}
        return {}

    def _add_scalars(self, row: dict) -> None:
        for k, v in row.items():
            if k != "step":
                self.tb.add_scalar(k, float(v), row["step"])

    def write(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{f"{self.prefix}/{k}": float(v) for k, v in metrics.items()}}
        if not self.primary:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self._add_scalars(row)
        self.tb.flush()

    def close(self):
        """Closes TensorBoard and draws `curves.png` beside metrics.jsonl (`prm_jax.plots`)."""
        if not self.primary:
            return
        self.tb.close()
        from prm_jax.plots import write_curves

        try:
            write_curves(self.path)
        except (OSError, ValueError, RuntimeError) as e:  # a picture never fails a run
            logging.warning("could not draw %s curves: %s", self.prefix, e)


def example_loader(examples: Sequence[dict], batch_size: int, seed: int) -> grain.DataLoader:
    """Batches of `examples` (dicts of equally shaped arrays): shuffled, repeated forever,
    sharded by JAX process; its iterator is checkpointable.

    `batch_size` is the global batch: each of the N processes yields batch_size / N rows of
    its own shard (`prm_jax.distributed.global_batch` joins them)."""
    if batch_size % jax.process_count():
        raise ValueError(f"batch size {batch_size} is not divisible by the {jax.process_count()} "
                         "JAX processes")
    if len(examples) < batch_size:
        raise ValueError(f"{len(examples)} examples are fewer than one batch of {batch_size}")
    batch_size //= jax.process_count()
    sampler = grain.IndexSampler(
        num_records=len(examples),
        shard_options=grain.ShardOptions(shard_index=jax.process_index(),
                                         shard_count=jax.process_count(), drop_remainder=True),
        shuffle=True, num_epochs=None, seed=seed)
    return grain.DataLoader(data_source=list(examples), sampler=sampler, worker_count=0,
                            operations=[grain.Batch(batch_size, drop_remainder=True)])


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stops and keeps its last checkpoint."""


def train(model, data: Sequence[dict] | Iterable[dict], *, loss: str | LossFn, config: LoopConfig,
          mesh, workdir: str, name: str, evaluate: Callable | None = None,
          stop_after: int | None = None, on_step: Callable[[int, Callable], None] | None = None):
    """Trains `model`; resumes from `workdir/name`.

    data: a list of examples (batched by `example_loader`) or an iterable of batches — a grain
      DataLoader's iterator position is checkpointed with the model. With several JAX processes
      each yields only its own process's rows (host arrays; see `prm_jax.distributed`).
    loss: a `LossFn` (model, batch) -> (loss, metrics), or a name from `LOSSES`.
    Returns (trained model, final metrics). `stop_after` ends the run early after that many
    steps of this invocation (used to test kill-and-resume). `on_step(step, get_model)` runs
    after every step (e.g. to export snapshots). A NaN/inf loss stops the run with
    `NonFiniteLossError` naming the step (checked one step late, without stalling the device).
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}")
        loss = LOSSES[loss]
    if isinstance(data, Sequence):
        data = example_loader(data, config.batch_size, config.seed)
    run_dir = os.path.join(os.path.abspath(workdir), name)
    os.makedirs(run_dir, exist_ok=True)
    tx, schedule = make_optimizer(config)
    trainer = ShardedTrainer(model, tx, mesh, loss)
    iterator = iter(data)
    checkpoints = Checkpointer(os.path.join(run_dir, "checkpoints"))
    items = {"data": iterator} if hasattr(iterator, "get_state") else {}
    start = 0
    if checkpoints.latest_step() is not None:
        restored = checkpoints.restore(checkpoints.latest_step(),
                                       state=abstract_like(trainer.state), **items)
        trainer.state = restored["state"]
        start = int(trainer.state.step)
    writer = MetricsWriter(run_dir, name, resume_step=start)

    def save(step):
        checkpoints.save(step, state=trainer.state, **items)

    last: dict = writer.last()
    pending = None
    bar = progress_bar(total=config.steps, initial=start, desc=name, unit="step", dynamic_ncols=True,
               mininterval=2.0)
    t0 = time.perf_counter()
    ran = 0
    for step in range(start, config.steps):
        batch = distributed.global_batch(mesh, next(iterator))
        metrics = trainer.step(batch)
        if pending is not None:  # read step t−1's metrics after dispatching step t
            _check_finite(name, *pending, checkpoints)
            _log(writer, bar, *pending, schedule, config)
        pending = (step, metrics)
        bar.update(1)
        ran += 1
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            save(step + 1)
        if config.eval_every and (step + 1) % config.eval_every == 0 and evaluate is not None:
            writer.write(step + 1, evaluate(trainer.model()))
        if on_step is not None:
            on_step(step + 1, trainer.model)
        if stop_after is not None and ran >= stop_after:
            break
    if pending is not None:
        _check_finite(name, *pending, checkpoints)
        last = _log(writer, bar, *pending, schedule, config, force=True)
    finished = int(trainer.state.step) >= config.steps
    if finished:
        save(config.steps)
    checkpoints.close()
    bar.close()
    result = dict(last, steps=int(trainer.state.step), seconds=time.perf_counter() - t0)
    if finished and evaluate is not None:
        final = evaluate(trainer.model())
        writer.write(config.steps, final)
        result.update(final)
    writer.close()
    return trainer.model(), result


def _check_finite(name: str, step: int, metrics: dict, checkpoints: Checkpointer) -> None:
    loss = float(jax.device_get(metrics["loss"]))
    if not math.isfinite(loss):
        checkpoints.wait()
        raise NonFiniteLossError(
            f"{name}: loss is {loss} at step {step + 1}; stopped (last checkpoint: step "
            f"{checkpoints.latest_step()}). Lower the learning rate or check the data.")


def _log(writer, bar, step, metrics, schedule, config, force=False) -> dict:
    if not force and step % config.log_every:
        return {}
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    values["learning_rate"] = float(schedule(step))
    writer.write(step + 1, values)
    bar.set_postfix(loss=f"{values['loss']:.4f}")
    return values
