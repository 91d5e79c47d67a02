"""A run's config.json turns back into the launcher ConfigDict (RL arms on any workdir)."""

import dataclasses
import importlib.util
import json
import os

import pytest

from prm_jax.run_config import RunConfig, config_dict_from_workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config_module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "configs", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(tmp_path, config):
    run = RunConfig.from_config_dict(config, str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(run.to_json_dict()))
    return run


def test_round_trip_equals_the_original(tmp_path):
    config = _config_module("default").get_config()
    config.sft.steps = 70
    config.sft.snapshot_steps = (30,)
    config.model.num_layers = 1
    config.batch_size = 3  # a model_check key, top-level in the ConfigDict
    original = _write_run(tmp_path, config)
    again = RunConfig.from_config_dict(config_dict_from_workdir(str(tmp_path)), str(tmp_path))
    assert again == original


def test_rl_arm_on_a_workdir_keeps_its_values(tmp_path):
    config = _config_module("default").get_config()
    config.data.num_train = 64
    config.model.hidden_size = 64
    _write_run(tmp_path, config)
    arm = _config_module("rl_ppo").get_config(f"grpo,{tmp_path}")
    assert arm.stages == ("rl",) and arm.rl.estimator == "grpo" and arm.rl.name == "grpo"
    assert arm.data.num_train == 64 and arm.model.hidden_size == 64
    # Without the workdir the arm starts from the default config.
    assert _config_module("rl_ppo").get_config("grpo").data.num_train == 8000


def test_an_arm_never_inherits_the_previous_arm(tmp_path):
    """The launcher rewrites the workdir's config.json with each arm's rl section; the next arm
    starts from the pipeline's own rl run (workdir/rl/config.json), not from that."""
    rl_ppo = _config_module("rl_ppo")
    config = _config_module("default").get_config()
    config.rl.iterations = 7  # the pipeline's own RL run
    run = _write_run(tmp_path, config)
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "config.json").write_text(json.dumps(dataclasses.asdict(run.rl)))
    grpo = rl_ppo.get_config(f"grpo,{tmp_path}")
    grpo.rl.iterations = 2
    _write_run(tmp_path, grpo)  # what the launcher leaves behind after the grpo arm
    sparse = rl_ppo.get_config(f"sparse,{tmp_path}")
    assert sparse.rl.iterations == 7
    assert (sparse.rl.kl_mode, sparse.rl.kl_coef) == ("reward", 0.01)
    assert sparse.rl.name == "sparse" and sparse.rl.estimator == "gae"
    RunConfig.from_config_dict(sparse, str(tmp_path))  # valid


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no run"):
        config_dict_from_workdir(str(tmp_path / "nothing"))
