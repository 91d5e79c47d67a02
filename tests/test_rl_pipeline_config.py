"""The paper-order pipeline's config: the outcome-only RL run, its snapshots and who samples."""

import pytest

import configs.default as default_config
from prm_jax import config_utils
from prm_jax.run_config import RLBaselineConfig, RunConfig
from prm_jax.stages import common
from prm_jax.workdir import Workdir


def _config(**overrides) -> RunConfig:
    cfg = default_config.get_config()
    for key, value in overrides.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return RunConfig.from_config_dict(cfg, workdir="/tmp/unused")


def test_default_pipeline_is_in_the_papers_order():
    config = _config()
    assert config.stages == ("sft", "rl_baseline", "sample", "label", "prm_train", "prm_eval", "rl")
    assert not config.rl_baseline.uses_prm and config.rl.uses_prm
    assert config.rl_baseline.snapshot_iterations == (5, 10, 15, 20)
    assert config.sample.rl_baseline_n == 1 and config.sample.n == 0
    # The policy that completes prefixes for the labels is the one whose responses are labelled.
    wd = Workdir("/tmp/unused")
    assert common.labelling_policy_path(config, wd) == wd.run_policy("rl_baseline")
    assert common.labelling_policy_path(_config(sample__rl_baseline_n=0, sample__n=4), wd) == wd.policy


@pytest.mark.parametrize("iterations, snapshots, expected", [
    (20, 4, (5, 10, 15, 20)), (2, 2, (1, 2)), (10, 3, (3, 7, 10)), (7, 1, (7,)), (5, 0, ())])
def test_snapshots_are_evenly_spaced_and_end_at_the_last_iteration(iterations, snapshots, expected):
    assert RLBaselineConfig(iterations=iterations, snapshots=snapshots).snapshot_iterations == expected


@pytest.mark.parametrize("overrides, message", [
    (dict(rl_baseline__dense=True), "config.rl_baseline.dense/critic_init"),
    (dict(rl_baseline__critic_init="prm"), "no PRM"),
    (dict(rl_baseline__iterations=0), "config.rl_baseline.iterations=0: expected a positive"),
    (dict(rl_baseline__snapshots=21), "config.rl_baseline.snapshots=21"),
    (dict(rl_baseline__snapshots=0), "config.sample.rl_baseline_n=1 samples from the rl_baseline"),
    (dict(rl__name="rl_baseline"), "would share a folder"),
    (dict(sample__rl_baseline_n=0), "config.sample.n/snapshot_n/rl_baseline_n=(0, 0, 0)"),
])
def test_bad_pipeline_configs_are_named(overrides, message):
    with pytest.raises(config_utils.ConfigKeyError, match=None) as info:
        _config(**overrides)
    assert message in str(info.value), str(info.value)
