"""RL arms on the default pipeline's workdir (SFT policy and PRM already there).

  python -m prm_jax.main --config=configs/rl_ppo.py:psgpo --workdir=runs/default

On a workdir made with another config (say a shrunk pipeline), name it after a comma: the run's
own config.json is the base, so every result-changing value matches it (the RL section starts
from the pipeline's own `rl` run):

  python -m prm_jax.main --config=configs/rl_ppo.py:psgpo,runs/small --workdir=runs/small

Arms (the argument after the colon; each writes workdir/<arm>/ and workdir/policy_<arm>/, so
all arms share one workdir and its SFT policy and PRM):
  sparse        PPO, unit-test reward only, critic from the SFT policy (fresh head)
  dense         PPO + dense PRM line rewards, critic from the policy
  value         PPO, unit-test reward only, critic initialised from the PRM
  psgpo         PPO + dense PRM rewards + critic from the PRM (PSGPO; the default config's `rl`)
  grpo          GRPO, unit-test reward only (k3 KL in the loss)
  grpo_process  GRPO on outcome + dense PRM rewards
  rloo          RLOO (PRIME-style per-token leave-one-out), unit-test reward only
  rloo_process  RLOO with the outcome and the dense PRM rewards as two reward sources
Expected: held-out greedy pass@1 in summary.json[<arm>]["test"] vs ["test_before"] (the SFT
policy); reward-hacking indicators in workdir/<arm>/metrics.jsonl.
"""

import importlib.util
import json
import os

_spec = importlib.util.spec_from_file_location(
    "prm_jax_default_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(default)

# Every arm sets every key any arm changes that matters to it (GRPO/RLOO have no critic), so an
# arm never inherits another's value.
_PPO = dict(estimator="gae", kl_mode="reward", kl_coef=0.01)
ARMS = {
    "sparse": dict(_PPO, dense=False, critic_init="policy"),
    "dense": dict(_PPO, dense=True, critic_init="policy"),
    "value": dict(_PPO, dense=False, critic_init="prm"),
    "psgpo": dict(_PPO, dense=True, critic_init="prm"),
    "grpo": dict(estimator="grpo", dense=False, kl_mode="loss", kl_coef=0.001),
    "grpo_process": dict(estimator="grpo", dense=True, kl_mode="loss",
                         kl_coef=0.001),
    "rloo": dict(estimator="rloo", dense=False, kl_mode="loss", kl_coef=0.001),
    "rloo_process": dict(estimator="rloo", dense=True, kl_mode="loss",
                         kl_coef=0.001),
}


def get_config(arg: str = "psgpo"):
    """`arg` = "<arm>" (on the default config) or "<arm>,<workdir>" (on that run's config; the
    RL section starts from the pipeline's own `rl` run, workdir/rl/config.json, else the
    default's — never from the top-level config.json, which holds whichever arm ran last)."""
    arm, _, workdir = arg.partition(",")
    if arm not in ARMS:
        raise ValueError(f"unknown RL arm {arm!r}; expected one of {sorted(ARMS)}")
    if workdir:
        from prm_jax.run_config import config_dict_from_json, config_dict_from_workdir

        config = config_dict_from_workdir(workdir)
        pipeline_rl = os.path.join(workdir, "rl", "config.json")
        if os.path.isfile(pipeline_rl):
            with open(pipeline_rl) as f:
                config.rl = config_dict_from_json({"rl": json.load(f)}).rl
        else:
            config.rl = default.get_config().rl
    else:
        config = default.get_config()
    config.stages = ("rl",)
    config.rl.name = arm
    for key, value in ARMS[arm].items():
        config.rl[key] = value
    return config
