"""NNX decoder vs transformers' PyTorch models (the oracle), and the export round trip."""

import json
import os

import numpy as np
import pytest

from hf_fixtures import TINY_VARIANTS, hf_forward, make_hf_model, padded_batch
from prm_jax.models import CausalLM, ScalarHeadModel, load_pretrained, save_pretrained

TOL = 1e-4


def _max_err(a, b, mask):
    return float(np.abs(np.asarray(a) - np.asarray(b))[mask].max())


@pytest.mark.parametrize("variant", sorted(TINY_VARIANTS))
def test_logits_match_transformers_and_round_trip(variant, tmp_path):
    import transformers

    hf_model = make_hf_model(variant)
    hf_model.save_pretrained(tmp_path / "hf")
    model = load_pretrained(str(tmp_path / "hf"))
    assert isinstance(model, CausalLM)
    tokens, mask = padded_batch(hf_model.config.vocab_size)
    expected = hf_forward(hf_model, tokens, mask)
    logits, _ = model(tokens, mask_BxT=mask)
    assert logits.shape == expected.shape
    assert _max_err(logits, expected, mask) < TOL

    # Our export loads in transformers with the same outputs.
    save_pretrained(model, str(tmp_path / "ours"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert type(reloaded).__name__ == type(hf_model).__name__
    assert _max_err(hf_forward(reloaded, tokens, mask), expected, mask) < TOL
    # ... and back into NNX.
    again, _ = load_pretrained(str(tmp_path / "ours"))(tokens, mask_BxT=mask)
    assert _max_err(again, expected, mask) < TOL


def test_llama3_rope_scaling_is_read(tmp_path):
    make_hf_model("llama_bias_llama3_rope").save_pretrained(tmp_path)
    config = load_pretrained(str(tmp_path)).config
    assert config.rope_scaling["rope_type"] == "llama3"
    assert config.rope_theta == 50000.0
    assert config.qkv_bias and config.o_bias


@pytest.mark.parametrize("variant", ["qwen2_tied_gqa", "llama_untied_gqa_theta"])
def test_scalar_head_matches_token_classification(variant, tmp_path):
    import transformers

    hf_model = make_hf_model(variant, head="scalar")
    hf_model.save_pretrained(tmp_path / "hf")
    model = load_pretrained(str(tmp_path / "hf"))
    assert isinstance(model, ScalarHeadModel)
    tokens, mask = padded_batch(hf_model.config.vocab_size)
    expected = hf_forward(hf_model, tokens, mask)[..., 0]
    values, _ = model(tokens, mask_BxT=mask)
    assert values.shape == expected.shape
    assert _max_err(values, expected, mask) < TOL
    save_pretrained(model, str(tmp_path / "ours"))
    reloaded = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path / "ours").eval()
    assert _max_err(hf_forward(reloaded, tokens, mask)[..., 0], expected, mask) < TOL


def test_scalar_head_from_causal_checkpoint_shares_backbone(tmp_path):
    """PRM initialisation from a policy checkpoint: same hidden states, fresh head."""
    hf_model = make_hf_model("qwen2_untied_mha")
    hf_model.save_pretrained(tmp_path)
    policy = load_pretrained(str(tmp_path))
    prm = load_pretrained(str(tmp_path), head="scalar", seed=3)
    tokens, mask = padded_batch(hf_model.config.vocab_size)
    h_policy, _ = policy.backbone(tokens, mask_BxT=mask)
    h_prm, _ = prm.backbone(tokens, mask_BxT=mask)
    np.testing.assert_allclose(np.asarray(h_policy), np.asarray(h_prm), atol=1e-6)
    values, _ = prm(tokens, mask_BxT=mask)
    expected = np.einsum("btd,d->bt", np.asarray(h_prm), np.asarray(prm.score_w[...])[:, 0])
    np.testing.assert_allclose(np.asarray(values), expected, atol=1e-5)
    # Built in memory from the policy, the copy does not alias the policy's weights.
    critic = ScalarHeadModel.from_backbone(policy, rngs=__import__("flax").nnx.Rngs(0))
    critic.backbone.embed[...] = critic.backbone.embed[...] * 0
    assert float(np.abs(np.asarray(policy.backbone.embed[...])).sum()) > 0


def test_sharded_bf16_export_loads_in_transformers(tmp_path):
    import torch
    import transformers

    hf_model = make_hf_model("llama_untied_gqa_theta")
    hf_model.save_pretrained(tmp_path / "hf")
    model = load_pretrained(str(tmp_path / "hf"))
    files = save_pretrained(model, str(tmp_path / "ours"), dtype="bfloat16", max_shard_bytes=20_000)
    assert len(files) > 1
    index = json.loads((tmp_path / "ours" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(files)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours")
    assert next(reloaded.parameters()).dtype == torch.bfloat16
    for name, p in hf_model.state_dict().items():
        np.testing.assert_allclose(reloaded.state_dict()[name].float().numpy(),
                                   p.to(torch.bfloat16).float().numpy(), err_msg=name)
    # Sharded bf16 checkpoints read back (index path) into float32 parameters.
    back = load_pretrained(str(tmp_path / "ours"))
    assert back.backbone.embed[...].dtype == np.float32
    assert not os.path.exists(tmp_path / "ours" / "model.safetensors")


def test_bf16_compute_is_close_to_fp32(tmp_path):
    make_hf_model("qwen2_tied_gqa").save_pretrained(tmp_path)
    fp32 = load_pretrained(str(tmp_path))
    bf16 = load_pretrained(str(tmp_path), dtype="bfloat16", param_dtype="bfloat16")
    tokens, mask = padded_batch(97)
    a, _ = fp32(tokens, mask_BxT=mask)
    b, _ = bf16(tokens, mask_BxT=mask)
    assert b.dtype == np.float32  # logits are always float32
    assert bf16.backbone.embed[...].dtype.name == "bfloat16"
    assert _max_err(a, b, mask) < 0.1
