"""Evaluate a policy on the synthetic long-horizon test split (pass@1, pass@4).

  python -m prm_jax.main --config=configs/eval_synthetic.py --workdir=runs/eval \\
      --config.init_from=runs/default/policy

Samples 4 completions for each of the first 32 held-out-composition problems with the Sampler
and scores them in the sandbox; writes samples.jsonl, eval_results.jsonl and summary.json
(pass@k overall, by horizon and by response length). With the untrained default model pass@k is
about 0; a trained policy's export directory goes in `init_from`.
"""

import importlib.util
import os

import ml_collections

_spec = importlib.util.spec_from_file_location(
    "prm_jax_default_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(default)


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.stages = ("evaluate",)
    config.eval = ml_collections.ConfigDict()
    config.eval.dataset = "synthetic"  # humaneval | mbpp | io | jsonl | synthetic
    config.eval.problems = "split=test,num_problems=32,max_horizon=8"  # path, or synthetic spec
    config.eval.max_problems = 0  # 0 = all
    config.eval.n = 4
    config.eval.ks = (1, 4)
    config.eval.temperature = 0.8
    config.eval.top_p = 0.95
    config.eval.max_new_tokens = 256
    config.eval.stop_strings = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
    config.eval.timeout_s = 5.0
    return config
