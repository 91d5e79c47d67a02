"""Sampler throughput and its fraction of the memory-bandwidth roofline, next to HF `generate`.

  python experiments/sampler_benchmark.py --shape tiny --batch 1,8,32 --prompt_len 128 --new_tokens 128
  python experiments/sampler_benchmark.py --shape qwen2.5-0.5b --dtype bfloat16 \\
      --batch 1,32,256 --prompt_len 128 --new_tokens 256        # on a GPU

Random weights with the real model's shapes (speed does not depend on the values). For each
batch size it prints generated tokens/s (best of 3 timed runs, after a compiling one) of
prm_jax's Sampler (temperature 1, every sequence runs
the full length) with top-p 1.0 and top-p 0.95, the programs it compiled, a plain jitted JAX
decode loop on the same model (one jitted step per token called from Python, a full-length
cache — what a first JAX implementation does) and the ratio, the roofline tokens/s — batch /
(bytes read per decode step / bandwidth), where a step reads every parameter once and the whole
KV cache — and the fraction reached; with torch installed, transformers' `generate` on the same
shapes in the same run. `--bandwidth_gbs` defaults to a measured device-to-device copy.
`--vocab` overrides the preset's vocabulary (e.g. 151936 to see top-p at Qwen's size).

Random weights give a near-uniform next-token distribution, the worst case for top-p (the
nucleus holds most of the vocabulary, so the sort-free filter falls back to its bisection every
step). `--logit_scale S` multiplies the final norm's scale, so logits scale by S and the
distribution is as peaked as a trained model's; the printed entropy (mean −log p of the sampled
tokens) says how peaked it is.
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

from prm_jax.compile_stats import CompileStats  # noqa: E402
from prm_jax.models import DecoderConfig, KVCache, build_model, count_params  # noqa: E402
from prm_jax.models.presets import PRESETS, preset  # noqa: E402
from prm_jax.sampling import Sampler, SamplingConfig  # noqa: E402
from prm_jax.tokenizer import load_tokenizer  # noqa: E402

def measured_bandwidth_gbs() -> float:
    """Device copy bandwidth: read + write of a 256 MiB buffer."""
    x = jnp.ones((64 << 20,), jnp.float32)
    copy = jax.jit(lambda a: a * 1.0001)
    copy(x).block_until_ready()
    reps, start = 10, time.perf_counter()
    for _ in range(reps):
        x = copy(x)
    x.block_until_ready()
    return 2 * x.nbytes * reps / (time.perf_counter() - start) / 1e9


def roofline_tokens_per_s(config: DecoderConfig, n_params: int, batch: int, prompt_len: int,
                          new_tokens: int, bandwidth_gbs: float) -> float:
    param_bytes = n_params * jnp.dtype(config.param_dtype).itemsize
    kv_per_token = 2 * config.num_layers * config.num_kv_heads * config.dim_per_head * \
        jnp.dtype(config.dtype).itemsize
    mean_context = prompt_len + new_tokens / 2
    step_bytes = param_bytes + batch * mean_context * kv_per_token
    return batch / (step_bytes / (bandwidth_gbs * 1e9))


def _prompts(model, batch, prompt_len):
    rng = np.random.default_rng(0)
    return [rng.integers(3, min(model.config.vocab_size, 1000), prompt_len).tolist()
            for _ in range(batch)]


def _best_seconds(run, repeats: int) -> float:
    """Shortest wall time of `repeats` calls of `run` (the least disturbed by other work on the
    machine; a shared 2-core host varies by ±30% between single runs)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_ours(model, tokenizer, batch, prompt_len, new_tokens, chunk, top_p=1.0, repeats=3):
    """(tokens/s, XLA programs compiled for this shape, their compile seconds) of the Sampler,
    best of `repeats` timed calls after a first (compiling) one."""
    sampler = Sampler(model, tokenizer, chunk=chunk, batch_multiple=1)
    prompts = _prompts(model, batch, prompt_len)
    config = SamplingConfig(temperature=1.0, top_p=top_p, max_new_tokens=new_tokens, eos_ids=())
    with CompileStats() as compiles:
        sampler.generate(prompts, config, detokenize=False)
    def run():
        out = sampler.generate(prompts, config, seed=1, detokenize=False)
        assert all(len(t) == new_tokens for t in out.token_ids)

    return batch * new_tokens / _best_seconds(run, repeats), compiles.compiles, compiles.seconds


def sampled_entropy(model, tokenizer, prompt_len) -> float:
    """Mean −log p of 8 × 64 sampled tokens: how peaked the model's distribution is."""
    out = Sampler(model, tokenizer, batch_multiple=1).generate(
        _prompts(model, 8, prompt_len), SamplingConfig(temperature=1.0, max_new_tokens=64, eos_ids=()),
        detokenize=False)
    return -float(np.mean(np.concatenate(out.logprobs)))


def bench_plain_loop(model, batch, prompt_len, new_tokens, repeats=3):
    """A plain jitted JAX decode loop: jitted prefill, then one jitted step (forward one token
    through a full-length cache, sample at temperature 1) per token, called from Python; best
    of `repeats` timed calls."""
    graphdef, params = nnx.split(model, nnx.Param)

    @jax.jit
    def prefill(params, tokens):
        cache = KVCache.init(model.config, tokens.shape[0], prompt_len + new_tokens)
        logits, cache = nnx.merge(graphdef, params)(tokens, cache=cache)
        return logits[:, -1], cache

    @functools.partial(jax.jit, donate_argnums=(1,))
    def step(params, cache, logits, key):
        token = jax.random.categorical(key, logits).astype(jnp.int32)
        logits, cache = nnx.merge(graphdef, params)(token[:, None], cache=cache)
        return cache, logits[:, 0], token

    def generate(seed):
        tokens = jnp.asarray(_prompts(model, batch, prompt_len), jnp.int32)
        logits, cache = prefill(params, tokens)
        key, out = jax.random.key(seed), []
        for t in range(new_tokens):
            cache, logits, token = step(params, cache, logits, jax.random.fold_in(key, t))
            out.append(token)
        return jnp.stack(out, axis=1).block_until_ready()

    generate(0)  # compile
    return batch * new_tokens / _best_seconds(lambda: generate(1), repeats)


def bench_hf(shape: dict, batch, prompt_len, new_tokens, dtype):
    try:
        import torch
        import transformers
    except ImportError:
        return None
    cls = transformers.Qwen2Config if shape["model_type"] == "qwen2" else transformers.LlamaConfig
    hf_config = cls(vocab_size=shape["vocab_size"], hidden_size=shape["hidden_size"],
                    intermediate_size=shape["intermediate_size"],
                    num_hidden_layers=shape["num_layers"], num_attention_heads=shape["num_heads"],
                    num_key_value_heads=shape["num_kv_heads"],
                    tie_word_embeddings=shape.get("tie_word_embeddings", False))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = torch.bfloat16 if (dtype == "bfloat16" and device == "cuda") else torch.float32
    model = transformers.AutoModelForCausalLM.from_config(hf_config, torch_dtype=torch_dtype).to(device).eval()
    ids = torch.randint(3, 1000, (batch, prompt_len), device=device)
    kwargs = dict(do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                  pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(ids, **dict(kwargs, max_new_tokens=4, min_new_tokens=4))
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(ids, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * new_tokens / (time.perf_counter() - start)


class PhaseTimer:
    """Calls a benchmark phase and prints its tokens/s and wall time (compiles included) to
    stderr as soon as it ends."""

    def __init__(self, label: str):
        self.label = label

    def __call__(self, name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        rate = result[0] if isinstance(result, tuple) else result
        rate_text = f"{rate:.1f} tok/s, " if rate is not None else ""
        print(f"  [{self.label}: {name} {rate_text}{time.perf_counter() - start:.1f} s]",
              file=sys.stderr, flush=True)
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--prompt_len", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--bandwidth_gbs", type=float, default=None)
    parser.add_argument("--no_hf", action="store_true")
    parser.add_argument("--vocab", type=int, default=None, help="override the preset's vocabulary")
    parser.add_argument("--logit_scale", type=float, default=1.0,
                        help="scale the logits (final norm) for a peaked, trained-like distribution")
    args = parser.parse_args()
    overrides = {"vocab_size": args.vocab} if args.vocab else {}
    config = preset(args.shape, dtype=args.dtype, param_dtype=args.dtype,
                    max_position_embeddings=args.prompt_len + args.new_tokens + 64, **overrides)
    model = build_model(config)
    norm = model.backbone.final_norm.scale
    norm[...] = norm[...] * args.logit_scale
    n_params = count_params(model)
    bandwidth = args.bandwidth_gbs or measured_bandwidth_gbs()
    tokenizer = load_tokenizer("builtin")
    device = jax.devices()[0]
    print(f"{args.shape}: {n_params / 1e6:.1f}M params, vocab {config.vocab_size}, {args.dtype}, "
          f"device {device.device_kind} ({device.platform}), bandwidth {bandwidth:.0f} GB/s, "
          f"prompt {args.prompt_len}, new {args.new_tokens}, chunk {args.chunk}, logit scale "
          f"{args.logit_scale:g} (entropy {sampled_entropy(model, tokenizer, args.prompt_len):.2f} "
          f"nats/token)")
    print(f"{'batch':>6s} {'prm_jax tok/s':>14s} {'top-p .95':>10s} {'compiles (s)':>13s} "
          f"{'plain loop':>11s} {'vs plain':>9s} {'roofline tok/s':>15s} {'fraction':>9s} "
          f"{'HF tok/s':>10s} {'vs HF':>7s}")
    shape = dict(PRESETS[args.shape], **overrides)
    for batch in [int(b) for b in args.batch.split(",")]:
        phases = PhaseTimer(f"batch {batch}")
        ours, compiles, compile_s = phases("sampler", bench_ours, model, tokenizer, batch,
                                           args.prompt_len, args.new_tokens, args.chunk)
        nucleus, _, _ = phases("top-p", bench_ours, model, tokenizer, batch, args.prompt_len,
                               args.new_tokens, args.chunk, top_p=0.95)
        plain = phases("plain loop", bench_plain_loop, model, batch, args.prompt_len,
                       args.new_tokens)
        roof = roofline_tokens_per_s(config, n_params, batch, args.prompt_len, args.new_tokens,
                                     bandwidth)
        hf = None if args.no_hf else phases("HF", bench_hf, shape, batch, args.prompt_len,
                                            args.new_tokens, args.dtype)
        hf_text = f"{hf:10.1f} {ours / hf:6.1f}x" if hf else f"{'-':>10s} {'-':>7s}"
        print(f"{batch:6d} {ours:14.1f} {nucleus:10.1f} {compiles:5d} ({compile_s:4.1f}) {plain:11.1f} "
              f"{ours / plain:8.2f}x {roof:15.1f} {ours / roof:9.3f} {hf_text}", flush=True)


if __name__ == "__main__":
    main()
