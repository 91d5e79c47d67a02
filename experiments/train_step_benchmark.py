"""Memory of the compiled SFT training step with chunked vs full-logits log-probs, and its speed.

  python experiments/train_step_benchmark.py --shape qwen2.5-0.5b            # compile only, any host
  python experiments/train_step_benchmark.py --shape qwen2.5-0.5b --dtype bfloat16
  python experiments/train_step_benchmark.py --shape qwen2.5-0.5b --remat --chunks 128
  python experiments/train_step_benchmark.py --shape tiny --batch 4 --seq_len 256 --measure
  python experiments/train_step_benchmark.py --shape qwen2.5-0.5b --dtype bfloat16 --measure  # GPU

The step is `prm_jax.train.step.train_step` with the SFT loss (`next_token_loss`) and the SFT
optimizer (clip + AdamW, `train.loop.make_optimizer`), lowered on abstract parameters
(`abstract_train_state`: `jax.ShapeDtypeStruct`s, no weights allocated) for a batch of
`--batch` × `--seq_len` tokens, once per `--chunks` entry (sequence positions of logits per chunk;
0 = the full [B,T,V] logits), with `--remat` each block recomputed in the backward pass. For
each it prints `compile().memory_analysis()`: argument, output,
alias (donated state reused for the output), temporary bytes, and
total = argument + output − alias + temp, the compiled program's peak footprint; next to it
one float32 [B,T,V] logits buffer, B·T·V·4 bytes. On XLA:CPU run it with
`XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false`: the default CPU scheduler
hoists the recomputation next to the forward pass, which keeps every activation alive and hides
what remat saves (GPU and TPU schedule for memory by default).

With `--measure` it also allocates the model (random weights), runs `--steps` real steps of
`ShardedTrainer` (after one compiling step) on all local devices and prints
tokens/s = B·T / (seconds per step) and MFU = 6·N·tokens/s / peak FLOP/s, N the parameter count
(embeddings included) and peak `--peak_tflops`, by default the measured FLOP/s of an n×n
matmul in the compute dtype (2n³ FLOPs); with bf16 on a known accelerator also against the
datasheet's dense bf16 peak ("MFU sheet", the usual convention).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from prm_jax import sharding  # noqa: E402
from prm_jax.models import CausalLM, build_model  # noqa: E402
from prm_jax.models.presets import PRESETS, preset  # noqa: E402
from prm_jax.train.loop import LoopConfig, make_optimizer  # noqa: E402
from prm_jax.train.losses import next_token_loss  # noqa: E402
from prm_jax.train.step import ShardedTrainer, abstract_train_state, lower_train_step  # noqa: E402

GB = 1e9
# Dense bf16 tensor-core peaks from the datasheets (SXM parts), for the conventional MFU.
DATASHEET_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "TPU v5p": 459.0,
                         "TPU v5 lite": 197.0, "TPU v4": 275.0, "TPU v6 lite": 918.0}


def datasheet_peak_flops(device_kind: str) -> float | None:
    for name, tflops in DATASHEET_BF16_TFLOPS.items():
        if name.lower() in device_kind.lower():
            return tflops * 1e12
    return None


def compiled_memory(config, tx, batch: int, seq_len: int, chunk: int) -> dict[str, float]:
    """memory_analysis() of the step compiled for abstract parameters, in GB."""
    graphdef, state = abstract_train_state(lambda: CausalLM(config, rngs=nnx.Rngs(0)), tx)
    spec = jax.ShapeDtypeStruct((batch, seq_len), jnp.int32)
    loss = functools.partial(next_token_loss, logits_chunk=chunk)
    lowered = lower_train_step(graphdef, state, {"tokens": spec, "mask": spec, "loss_mask": spec},
                               tx=tx, loss_fn=loss)
    m = lowered.compile().memory_analysis()
    out = {"argument": m.argument_size_in_bytes, "output": m.output_size_in_bytes,
           "alias": m.alias_size_in_bytes, "temp": m.temp_size_in_bytes}
    out["total"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    return {k: v / GB for k, v in out.items()}


def measured_peak_flops(dtype, n: int) -> float:
    """FLOP/s of an n×n @ n×n matmul (2n³ FLOPs) in `dtype` on random data, best of 5 after a
    warm-up."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def measured_tokens_per_s(config, tx, batch: int, seq_len: int, chunk: int, steps: int) -> float:
    """Tokens/s of real `ShardedTrainer` steps on random tokens (one compiling step first)."""
    mesh = sharding.make_mesh({"data": 1, "fsdp": -1, "tensor": 1})
    loss = functools.partial(next_token_loss, logits_chunk=chunk)
    trainer = ShardedTrainer(build_model(config), tx, mesh, loss)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, (batch, seq_len)).astype(np.int32)
    ones = np.ones_like(tokens)
    data = trainer.shard_batch({"tokens": tokens, "mask": ones, "loss_mask": ones})
    jax.block_until_ready(trainer.step(data))
    start = time.perf_counter()
    for _ in range(steps):
        metrics = trainer.step(data)
    jax.block_until_ready(metrics)
    return batch * seq_len * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(PRESETS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="compute dtype")
    parser.add_argument("--param_dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=640)
    parser.add_argument("--chunks", default="128,0", help="comma-separated; 0 = full logits")
    parser.add_argument("--measure", action="store_true", help="also run real steps")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--peak_tflops", type=float, default=None)
    parser.add_argument("--remat", action="store_true",
                        help="recompute each block in the backward pass (DecoderConfig.remat)")
    args = parser.parse_args()
    config = preset(args.shape, dtype=args.dtype, param_dtype=args.param_dtype, remat=args.remat,
                    max_position_embeddings=max(args.seq_len, PRESETS[args.shape].get(
                        "max_position_embeddings", 2048)))
    tx, _ = make_optimizer(LoopConfig(steps=1000, batch_size=args.batch))
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(
        nnx.state(nnx.eval_shape(lambda: CausalLM(config, rngs=nnx.Rngs(0))), nnx.Param)))
    device = jax.devices()[0]
    logits_gb = args.batch * args.seq_len * config.vocab_size * 4 / GB
    print(f"{args.shape}: {n_params / 1e6:.1f}M params, compute {args.dtype}, params "
          f"{args.param_dtype}, remat {args.remat}, batch {args.batch} x {args.seq_len} tokens, "
          f"V={config.vocab_size}, "
          f"device {device.device_kind} ({device.platform}); one float32 [B,T,V] buffer "
          f"{logits_gb:.2f} GB")
    peak = None
    if args.measure:
        peak = (args.peak_tflops * 1e12 if args.peak_tflops else
                measured_peak_flops(config.compute_dtype, 1024 if device.platform == "cpu" else 8192))
        print(f"peak {peak / 1e12:.2f} TFLOP/s ({'given' if args.peak_tflops else 'measured matmul'})")
    sheet = datasheet_peak_flops(device.device_kind) if args.measure and args.dtype == "bfloat16" else None
    if sheet:
        print(f"datasheet bf16 peak of {device.device_kind}: {sheet / 1e12:.0f} TFLOP/s")
    print(f"{'chunk':>6s} {'temp GB':>8s} {'argument GB':>12s} {'output GB':>10s} {'alias GB':>9s} "
          f"{'total GB':>9s} {'compile s':>10s}" + (f" {'tokens/s':>10s} {'MFU':>6s}" if peak else "")
          + (f" {'MFU sheet':>9s}" if sheet else ""))
    for chunk in [int(c) for c in args.chunks.split(",")]:
        start = time.perf_counter()
        m = compiled_memory(config, tx, args.batch, args.seq_len, chunk)
        line = (f"{chunk or 'full':>6} {m['temp']:8.3f} {m['argument']:12.3f} {m['output']:10.3f} "
                f"{m['alias']:9.3f} {m['total']:9.3f} {time.perf_counter() - start:10.1f}")
        if peak:
            tps = measured_tokens_per_s(config, tx, args.batch, args.seq_len, chunk, args.steps)
            line += f" {tps:10.1f} {6 * n_params * tps / peak:6.1%}"
            if sheet:
                line += f" {6 * n_params * tps / sheet:9.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
