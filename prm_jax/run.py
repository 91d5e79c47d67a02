"""Top-level loop: runs the configured stages in order. The ConfigDict stops here."""

from __future__ import annotations

import importlib
import json
import os
import time

import jax
import ml_collections
from absl import logging

from prm_jax import config_utils, sharding
from prm_jax.data.problem import ProblemError
from prm_jax.sampling import SamplingError
from prm_jax.models import config as model_config, hf

# stage name -> "module:function(config, workdir) -> dict of results".
STAGES = {
    "model_check": "prm_jax.model_check:run",
    "evaluate": "prm_jax.eval_stage:run",
    "sft": "prm_jax.pipeline:sft",
    "sample": "prm_jax.pipeline:sample",
    "label": "prm_jax.pipeline:label",
    "prm_train": "prm_jax.pipeline:prm_train",
    "prm_eval": "prm_jax.pipeline:prm_eval",
}

# Errors caused by the user's input, reported without a traceback.
USER_ERRORS = (config_utils.ConfigKeyError, model_config.ConfigError, sharding.ShardingError,
               hf.CheckpointError, FileNotFoundError, ProblemError, SamplingError)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise config_utils.ConfigKeyError(f"config.stages has unknown stages {unknown}; "
                                          f"available: {sorted(STAGES)}")
    if config.get("distributed", False):
        jax.distributed.initialize()
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    results = {}
    for stage in config.stages:
        module, function = STAGES[stage].split(":")
        logging.info("stage %s", stage)
        start = time.perf_counter()
        results[stage] = getattr(importlib.import_module(module), function)(config, workdir)
        results[stage]["stage_seconds"] = round(time.perf_counter() - start, 1)
        # Written after every stage, so a partial run still leaves its summary.
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(results, f, indent=2, default=str)
    return results
