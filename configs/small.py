"""The default pipeline shrunk to about a minute on a 2-core CPU: every stage runs (SFT →
outcome-only RL → sample → label → PRM train → PRM eval → PSGPO RL) on a one-layer d=64 model,
a few dozen problems and a few steps each. For trying the pipeline (the notebooks use it when no
run exists) and for tests; its figures mean nothing.

  python -m prm_jax.main --config=configs/small.py --workdir=runs/small
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "prm_jax_default_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(default)

# Dotted keys of configs/default.py and their shrunk values.
OVERRIDES = {
    "data.num_train": 64, "data.num_test": 8, "data.max_horizon": 3,
    "sft.steps": 30, "sft.checkpoint_every": 10, "sft.snapshot_steps": (10,),
    "sample.num_problems": 8, "sample.n": 1, "sample.snapshot_n": 1, "sample.rl_baseline_n": 1,
    "sample.max_new_tokens": 48,
    "label.k": 2, "label.mc_responses": 3, "label.mutation_responses": 4,
    "label.reference_tasks": 4,
    "prm.steps": 10, "prm.batch_size": 4, "prm.heldout_fraction": 0.5, "prm.probe_problems": 12,
    "model.num_layers": 1, "model.hidden_size": 64, "model.intermediate_size": 128,
    "rl.iterations": 2, "rl.prompts": 4, "rl.samples": 2, "rl.max_new_tokens": 48,
    "rl.eval_every": 0, "rl.checkpoint_every": 1, "rl.num_problems": 16,
    "rl_baseline.iterations": 2, "rl_baseline.prompts": 4, "rl_baseline.samples": 2,
    "rl_baseline.max_new_tokens": 48, "rl_baseline.eval_every": 0,
    "rl_baseline.checkpoint_every": 1, "rl_baseline.num_problems": 16,
    "rl_baseline.snapshots": 2,
}


def get_config():
    config = default.get_config()
    for dotted, value in OVERRIDES.items():
        section, key = dotted.split(".")
        config[section][key] = value
    return config
