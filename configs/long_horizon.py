"""The default pipeline on longer programs: horizons H = 1–8 (the default stops at 4), where a
line-level reward has the most lines to assign credit to. Same model, budgets and seeds as
configs/default.py; 64 held-out problems; RL responses up to 160 tokens.

  python -m prm_jax.main --config=configs/long_horizon.py --workdir=runs/long_horizon
  python experiments/psgpo_grid.py --workdir runs/long_horizon --grid key --out experiments/results/psgpo_key_long
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "prm_jax_default_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(default)

OVERRIDES = {
    "data.max_horizon": 8, "data.num_test": 64, "sft.seq_len": 320,
    "rl.max_new_tokens": 160, "rl_baseline.max_new_tokens": 160,
}


def get_config():
    config = default.get_config()
    for dotted, value in OVERRIDES.items():
        section, key = dotted.split(".")
        config[section][key] = value
    return config
