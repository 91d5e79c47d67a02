"""Full-size model shapes build abstractly (jax.eval_shape) and shard under the rules."""

import jax
import pytest
from flax import nnx

from prm_jax import sharding
from prm_jax.models import build_model, count_params
from prm_jax.models.presets import PRESETS, preset


@pytest.mark.parametrize("name, params_millions", [("qwen2.5-0.5b", 494.0), ("qwen2.5-1.5b", 1543.7)])
def test_real_shapes_have_the_published_parameter_counts(name, params_millions):
    model = nnx.eval_shape(lambda: build_model(preset(name)))
    assert abs(count_params(model) / 1e6 - params_millions) < 1.0
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    shardings = sharding.state_shardings(nnx.state(model, nnx.Param), mesh)
    q = shardings["backbone"]["layers"][0]["attn"]["q_proj"].get_value()
    assert q.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset 'gpt5'"):
        preset("gpt5")
    assert "tiny" in PRESETS
