"""Multi-host smoke check: sharded train steps, the data loader's shards and greedy sampling.

Run the same command on every host (or once per process) before a long multi-host run:

    python -m prm_jax.multihost_check --distributed --workdir=/shared/tmp --out=/tmp/check_{process}.json

It builds one global (data, fsdp, tensor) mesh over every process's devices (default: fsdp 2,
tensor 2, data the rest), trains a tiny model for a few steps on a fixed batch (each process
feeding only its own rows), reads the problem loader's shard, scores sequences with a
scalar-head model (as the PRM does), optionally runs the training loop with checkpoints in a
shared `--workdir`, and samples (greedy, and top-p through a growing cache). Every process
checks that the loader shards of all processes are disjoint and cover the records and that all
processes agree on losses, parameters, scores and samples; the exit status is 1 if not. The results (JSON; `{process}` in
--out becomes the process index) are the same, up to float rounding, for any number of
processes with the same mesh shape.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from prm_jax import distributed

SEQ_LEN = 16


def num_records() -> int:
    """Problems the loader check shards: 12, or 2 per process on more than 6 processes."""
    return max(12, 2 * jax.process_count())


def _tiny_model(tokenizer, seed: int, head: str = "lm"):
    from prm_jax.models import DecoderConfig, build_model

    config = DecoderConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                           num_layers=1, num_heads=4, num_kv_heads=2, max_position_embeddings=128)
    return build_model(config, head=head, seed=seed)


def _fixed_batch(batch_size: int, vocab: int) -> dict:
    """The same global batch on every process: random tokens, one left-padded row, loss on the
    second half of each row."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, vocab, (batch_size, SEQ_LEN)).astype(np.int32)
    mask = np.ones((batch_size, SEQ_LEN), np.int32)
    mask[1, :4] = 0
    loss_mask = mask.copy()
    loss_mask[:, :SEQ_LEN // 2] = 0
    return {"tokens": tokens, "mask": mask, "loss_mask": loss_mask}


def param_checksums(params) -> list[list[float]]:
    """[sum, sum of squares] of every parameter leaf, computed on device (replicated result)."""
    leaves = jax.tree.leaves(params)
    sums = jax.jit(lambda xs: [jnp.stack([jnp.sum(x.astype(jnp.float32)),
                                          jnp.sum(jnp.square(x.astype(jnp.float32)))])
                               for x in xs])(leaves)
    return [[float(v) for v in s] for s in distributed.to_host(sums)]


def train_steps(mesh, tokenizer, *, steps: int, batch_size: int) -> dict:
    """`steps` SFT steps of a `ShardedTrainer` on a fixed global batch, each process feeding
    only its own rows."""
    import optax

    from prm_jax.train.losses import next_token_loss
    from prm_jax.train.step import ShardedTrainer

    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, eps=1e-4))
    trainer = ShardedTrainer(_tiny_model(tokenizer, seed=1), tx, mesh, next_token_loss)
    rows = distributed.local_rows(mesh, batch_size)
    local = {k: v[rows] for k, v in _fixed_batch(batch_size, len(tokenizer)).items()}
    losses = []
    for _ in range(steps):
        metrics = trainer.step(distributed.global_batch(mesh, local))
        losses.append(float(jax.device_get(metrics["loss"])))
    return {"rows": [rows.start, rows.stop], "losses": losses,
            "param_checksums": param_checksums(trainer.state.params)}


def train_loop(mesh, tokenizer, workdir: str, *, steps: int, batch_size: int) -> dict:
    """`prm_jax.train.loop.train` from scratch in `workdir/multihost_check` (a directory every
    process sees): the example loader's per-process batches, checkpoints and metrics.

    There are exactly `batch_size` examples, so every step's global batch holds all of them
    whatever the number of processes, and the losses do not depend on it."""
    from flax import nnx

    from prm_jax.train.loop import LoopConfig, train

    rows = _fixed_batch(batch_size, len(tokenizer))
    examples = [{k: v[i] for k, v in rows.items()} for i in range(batch_size)]
    run_dir = os.path.join(workdir, "multihost_check")
    if jax.process_index() == 0:
        shutil.rmtree(run_dir, ignore_errors=True)
    multihost_utils.sync_global_devices("multihost_check: fresh workdir")
    config = LoopConfig(steps=steps, batch_size=batch_size, learning_rate=1e-2, warmup_steps=1,
                        checkpoint_every=steps, log_every=1)
    model, result = train(_tiny_model(tokenizer, seed=1), examples, loss="next_token",
                          config=config, mesh=mesh, workdir=workdir, name="multihost_check")
    return {"loss": result["loss"], "steps": result["steps"],
            "param_checksums": param_checksums(nnx.state(model, nnx.Param)),
            "checkpoints": sorted(os.listdir(os.path.join(run_dir, "checkpoints")))}


def loader_shard(batch_size: int = 2) -> list[int]:
    """Indices of the records this process's problem loader yields in one epoch."""
    from prm_jax.data import synthetic
    from prm_jax.data.loader import problem_loader
    from prm_jax.data.tfds_builder import problem_to_record

    problems = synthetic.generate(synthetic.SyntheticConfig(num_problems=num_records(),
                                                            max_horizon=3))
    index = {p.task_id: i for i, p in enumerate(problems)}
    loader = problem_loader([problem_to_record(p) for p in problems], batch_size=batch_size,
                            seed=0, num_epochs=1)
    return [index[p.task_id] for batch in loader for p in batch]


def greedy_samples(mesh, tokenizer, *, max_new_tokens: int = 8) -> list[list[int]]:
    """Continuations of the same four prompts on every process: greedy (`max_new_tokens`), then
    2 nucleus samples each (temperature 1, top-p 0.9, 20 tokens) with short chunks and small
    cache buckets, so the cache grows and the sort-free top-p path runs across processes."""
    from prm_jax.sampling import Sampler, SamplingConfig

    rng = np.random.default_rng(1)
    prompts = [rng.integers(2, len(tokenizer), n).tolist() for n in (9, 4, 1, 6)]
    model = _tiny_model(tokenizer, seed=3)
    sampler = Sampler(model, tokenizer, mesh=mesh)
    out = sampler.generate(prompts, SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens,
                                                   eos_ids=()), seed=0, detokenize=False)
    nucleus = Sampler(model, tokenizer, mesh=mesh, chunk=8, prompt_buckets=(16, 32)).generate(
        prompts, SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=20, n=2, eos_ids=()),
        seed=5, detokenize=False)
    return out.token_ids + nucleus.token_ids


def prm_values(mesh, tokenizer) -> list[list[float]]:
    """A scalar-head model's values at chosen positions of the same sequences on every process
    (`ShardedModel.values_at`, as PRM scoring uses it)."""
    from prm_jax.models.sharded import ShardedModel

    rng = np.random.default_rng(2)
    ids = [rng.integers(2, len(tokenizer), n).tolist() for n in (12, 5, 9)]
    positions = [[0, 11], [4], [3, 8]]
    sharded = ShardedModel(_tiny_model(tokenizer, seed=4, head="scalar"), mesh)
    return sharded.values_at(ids, positions, batch_size=8, bucket=16)


def _guarded(part):
    """(value, None) or (None, "Type: message"): a failing part is reported, not fatal, so the
    processes still meet at the checks' collectives."""
    try:
        return part(), None
    except Exception as e:  # noqa: BLE001  (any failure is the check's result)
        return None, f"{type(e).__name__}: {e}"


def _disagreements(compared: dict) -> list[str]:
    errors = []
    for name, values in compared.items():
        mine = np.asarray(values, np.float64)
        every = np.asarray(multihost_utils.process_allgather(mine))
        if not np.array_equal(every, np.broadcast_to(mine, every.shape)):
            errors.append(f"processes disagree on {name}")
    return errors


def consistency_errors(result: dict) -> list[str]:
    """Failed parts and disagreements between processes (every process runs the same
    collectives here, in the same order)."""
    errors = [f"{part} failed: {message}" for part, message in result["failures"].items()]
    count = jax.process_count()
    shards = np.asarray(multihost_utils.process_allgather(np.asarray(result["loader"], np.int32)))
    shards = shards.reshape(count, -1)
    flat = sorted(shards.ravel().tolist())
    if len(set(flat)) != len(flat):
        errors.append(f"loader shards overlap: {shards.tolist()}")
    total = num_records()
    if not all(0 <= i < total for i in flat) or len(flat) != total - total % count:
        errors.append(f"loader shards do not cover the {total} records: {shards.tolist()}")
    compared = {"losses": result["train"]["losses"],
                "param_checksums": result["train"]["param_checksums"],
                "prm_values": [v for values in result["prm_values"] for v in values]}
    if "loop" in result:
        compared.update({"loop loss": [result["loop"]["loss"]],
                         "loop param_checksums": result["loop"]["param_checksums"]})
    sampled = np.asarray(multihost_utils.process_allgather(np.int32(result["samples"] is not None)))
    if sampled.all():
        compared["samples"] = [token for row in result["samples"] for token in row]
    return errors + _disagreements(compared)


def run(*, mesh_shape=(-1, 2, 2), steps: int = 3, batch_size: int | None = None,
        workdir: str | None = None) -> dict:
    """Every part of the check on the already-initialised JAX runtime; returns the results.
    `batch_size` (global) defaults to 2 rows per (data, fsdp) shard. With `workdir`, the
    training loop (checkpoints, metrics) runs there too."""
    from prm_jax import sharding
    from prm_jax.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("builtin")
    mesh = sharding.make_mesh(dict(zip(sharding.MESH_AXES, mesh_shape)))
    if batch_size is None:
        batch_size = 2 * mesh.shape["data"] * mesh.shape["fsdp"]
    seconds = {}

    def timed(name, part):
        start = time.perf_counter()
        value = part()
        seconds[name] = round(time.perf_counter() - start, 2)
        return value

    result = {
        "process_index": jax.process_index(), "process_count": jax.process_count(),
        "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
        "mesh": dict(mesh.shape), "seconds": seconds, "failures": {},
        "train": timed("train", lambda: train_steps(mesh, tokenizer, steps=steps,
                                                    batch_size=batch_size)),
        "loader": timed("loader", loader_shard),
        "prm_values": timed("prm_values", lambda: prm_values(mesh, tokenizer)),
    }
    if workdir:
        result["loop"] = timed("loop", lambda: train_loop(mesh, tokenizer, workdir, steps=2,
                                                          batch_size=batch_size))
    result["samples"], failure = timed("sampling",
                                       lambda: _guarded(lambda: greedy_samples(mesh, tokenizer)))
    if failure:
        result["failures"]["sampling"] = failure
    result["errors"] = timed("checks", lambda: consistency_errors(result))
    return result


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m prm_jax.multihost_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="JSON results path; {process} becomes the process index")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize (arguments below, the JAX_* "
                             "environment, or auto-detection)")
    parser.add_argument("--coordinator_address")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    parser.add_argument("--mesh", default="-1,2,2", help="data,fsdp,tensor sizes (-1: the rest)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch_size", type=int,
                        help="global batch size (default: 2 rows per data x fsdp shard)")
    parser.add_argument("--workdir", help="a directory every process sees (shared filesystem): "
                                          "also run the training loop with checkpoints there")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.distributed or args.num_processes:
        distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    mesh_shape = tuple(int(s) for s in args.mesh.split(","))
    result = run(mesh_shape=mesh_shape, steps=args.steps, batch_size=args.batch_size,
                 workdir=args.workdir)
    if args.out:
        with open(args.out.replace("{process}", str(jax.process_index())), "w") as f:
            f.write(json.dumps(result) + "\n")
    status = "OK" if not result["errors"] else "FAILED: " + "; ".join(result["errors"])
    print(f"process {jax.process_index()}/{jax.process_count()} on {jax.device_count()} devices: "
          f"losses {result['train']['losses']}, loader records {result['loader']}: {status}",
          flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
