"""Top-level loop: validates the whole config, then runs the configured stages in order.

The `ml_collections.ConfigDict` stops here: it becomes a validated `RunConfig` (absolute paths)
before anything is written. A workdir that already holds a run is resumed only if no
result-changing key differs from its `config.json`. `summary.json` merges each stage's results
into what earlier invocations wrote — and what concurrent ones write — after every stage (under a
lock, atomically).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import ml_collections
from absl import logging

from prm_jax import config_utils, distributed, sharding
from prm_jax.data.problem import ProblemError
from prm_jax.jsonio import JsonlError, merge_json_atomic, write_json_atomic
from prm_jax.models import config as model_config, hf
from prm_jax.models.factory import check_model
from prm_jax.run_config import RL_STAGES, RunConfig, flatten, result_changing_differences
from prm_jax.sampling import SamplingError
from prm_jax.stages.context import StageContext
from prm_jax.tokenizer import load_tokenizer
from prm_jax.workdir import Workdir

# Errors caused by the user's input, reported without a traceback.
USER_ERRORS = (config_utils.ConfigKeyError, model_config.ConfigError, sharding.ShardingError,
               hf.CheckpointError, FileNotFoundError, ProblemError, SamplingError, JsonlError,
               NotADirectoryError)


class ResumeMismatchError(config_utils.ConfigKeyError):
    """The workdir holds a run made with different result-changing config values."""


def prepare(config: ml_collections.ConfigDict, workdir: str) -> StageContext:
    """Validates everything a run needs (config values, tokenizer, model shape, mesh, sharding,
    a resumable workdir) without writing anything; returns what the stages receive."""
    run_config = RunConfig.from_config_dict(config, workdir)
    if run_config.distributed:
        distributed.initialize()
    tokenizer = load_tokenizer(run_config.tokenizer_dir)
    mesh = sharding.make_mesh(dict(run_config.mesh))
    check_model(run_config, tokenizer, mesh)
    wd = Workdir(run_config.workdir)
    if os.path.exists(wd.config):
        with open(wd.config) as f:
            previous = json.load(f)
        diff = result_changing_differences(previous, run_config.to_json_dict())
        if diff:
            raise ResumeMismatchError(
                f"workdir {wd.root} holds a run with a different config; refusing to mix results. "
                f"Differences: {'; '.join(diff)}. Use a new --workdir (or restore those values).")
    for section in _rl_runs(run_config):
        _check_rl_run(wd, section)
    return StageContext(config=run_config, workdir=wd, tokenizer=tokenizer, mesh=mesh)


def rl_config_path(wd: Workdir, name: str) -> str:
    return wd.path(name, "config.json")


def _rl_runs(run_config: RunConfig) -> list:
    """The RL sections (rl, rl_baseline) whose stages this invocation runs."""
    return [getattr(run_config, stage) for stage in RL_STAGES
            if stage in run_config.stages and getattr(run_config, stage) is not None]


def _check_rl_run(wd: Workdir, section) -> None:
    """A named RL run resumes only with the same RL section (its own config.json)."""
    path = rl_config_path(wd, section.name)
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f)
    old, new = flatten(previous), flatten(json.loads(json.dumps(dataclasses.asdict(section))))
    diff = [f"{section.SECTION}.{k}: {old[k]!r} -> {new[k]!r}"
            for k in sorted(set(old) & set(new)) if old[k] != new[k]]
    if diff:
        raise ResumeMismatchError(
            f"RL run {section.name!r} in {wd.root} was made with a different {section.SECTION} "
            f"config; differences: {'; '.join(diff)}. Choose another "
            f"--config.{section.SECTION}.name.")


def _previous(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    from prm_jax.stages import STAGES

    ctx = prepare(config, workdir)
    run_config, wd = ctx.config, ctx.workdir
    os.makedirs(wd.root, exist_ok=True)
    stored = _previous(wd.config)
    write_json_atomic(wd.config, {**stored, **{k: v for k, v in run_config.to_json_dict().items()
                                               if v is not None or k not in stored}})
    for section in _rl_runs(run_config):
        os.makedirs(wd.path(section.name), exist_ok=True)
        write_json_atomic(rl_config_path(wd, section.name), dataclasses.asdict(section))
    results = {}
    for stage in run_config.stages:
        logging.info("stage %s", stage)
        start = time.perf_counter()
        # RL arms are named runs sharing a workdir: each has its own summary entry.
        key = getattr(run_config, stage).name if stage in RL_STAGES else stage
        results[key] = STAGES[stage](ctx)
        results[key]["stage_seconds"] = round(time.perf_counter() - start, 1)
        # Merged after every stage, so a partial run still leaves its summary, and runs in one
        # workdir (RL arms started side by side) keep each other's entries.
        merge_json_atomic(wd.summary, {key: results[key]})
    return results
