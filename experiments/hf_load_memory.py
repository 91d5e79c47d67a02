"""Host-memory peak when loading a Hugging Face checkpoint into the NNX model.

  python experiments/hf_load_memory.py [--shape qwen2.5-0.5b] [--param_dtype bfloat16]

Writes a random checkpoint with the real model's shapes (bf16 safetensors, HF layout) to a
temporary directory, then, in a fresh process, loads it with `prm_jax.models.load_pretrained`
and prints: RSS after imports, peak RSS (ru_maxrss) during the load, the model's own bytes, and
the overhead = peak − baseline − model. A loader that materialised the file twice would show an
overhead close to the checkpoint size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

def write_checkpoint(shape: str, path: str) -> int:
    import numpy as np
    import ml_dtypes

    from prm_jax.models.hf import tensor_specs
    from prm_jax.models.presets import preset
    from prm_jax.models.safetensors_io import write_safetensors

    config = preset(shape)
    specs = tensor_specs(config, "lm")
    rng = np.random.default_rng(0)
    bf16 = np.dtype(ml_dtypes.bfloat16)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config.to_hf_dict(), f)
    return write_safetensors(
        os.path.join(path, "model.safetensors"),
        [(name, spec.hf_shape, bf16) for name, spec in specs.items()],
        lambda name: (0.02 * rng.standard_normal(specs[name].hf_shape, np.float32)).astype(bf16))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_and_measure(path: str, param_dtype: str) -> dict:
    import jax

    from prm_jax.models import count_params, load_pretrained

    jax.numpy.zeros(1).block_until_ready()  # initialise the backend before the baseline
    baseline = _rss_mb()
    start = time.perf_counter()
    model = load_pretrained(path, param_dtype=param_dtype, dtype=param_dtype)
    jax.block_until_ready(jax.tree.leaves(jax.tree.map(lambda x: x, __import__("flax").nnx.state(model))))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = count_params(model)
    model_mb = n * jax.numpy.dtype(param_dtype).itemsize / 2**20
    return {"params": n, "param_dtype": param_dtype, "baseline_rss_mb": round(baseline),
            "peak_rss_mb": round(peak), "model_mb": round(model_mb),
            "overhead_mb": round(peak - baseline - model_mb), "load_s": round(seconds, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=["qwen2.5-0.5b", "qwen2.5-1.5b"])
    parser.add_argument("--param_dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--_load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._load:
        print(json.dumps(load_and_measure(args._load, args.param_dtype)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        size = write_checkpoint(args.shape, tmp)
        print(f"{args.shape}: checkpoint {size / 2**20:.0f} MiB (bf16) at {tmp}")
        out = subprocess.run([sys.executable, __file__, "--_load", tmp, "--param_dtype",
                              args.param_dtype], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["checkpoint_mb"] = round(size / 2**20)
        for key, value in result.items():
            print(f"  {key:16s} {value}")


if __name__ == "__main__":
    main()
