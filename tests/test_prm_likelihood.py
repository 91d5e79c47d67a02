"""The PRM's likelihood term: value_t = h_t·w + b + a·max(m_t, −c)/c, m_t the least likely
response token so far under the model's own LM head — against a NumPy oracle built from the
causal LM's logits, through HF export/import, scoring, the PRM loss and the critic copy."""

import numpy as np
import pytest
from flax import nnx

from prm_jax.models import DecoderConfig, ScalarHeadModel, build_model, load_pretrained, save_pretrained
from prm_jax.models.heads import CausalLM
from prm_jax.models.sharded import ShardedModel
from prm_jax.prm.score import score_lines
from prm_jax.rl.critic_init import init_critic
from prm_jax.tokenizer import load_tokenizer
from prm_jax.train import losses
from prm_jax.train.examples import prm_example

CLIP = 6.0


def _config(tied: bool) -> DecoderConfig:
    return DecoderConfig(vocab_size=1024, hidden_size=32, intermediate_size=64, num_layers=2,
                         num_heads=2, num_kv_heads=1, tie_word_embeddings=tied)


def _oracle(lm: CausalLM, prm: ScalarHeadModel, tokens, mask, starts):
    """NumPy: the linear head on the PRM's hidden states + a·max(running min, −c)/c, with the
    log-probs from the causal LM that shares the PRM's weights."""
    logits = np.asarray(lm(tokens, mask_BxT=mask)[0], np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    hidden = np.asarray(prm.backbone(tokens, mask_BxT=mask)[0], np.float64)
    linear = hidden @ np.asarray(prm.score_w[...], np.float64)[:, 0] + float(prm.score_b[...][0])
    a = float(prm.score_likelihood_weight[...][0])
    out = np.zeros(tokens.shape)
    for b in range(tokens.shape[0]):
        m = 0.0
        for t in range(tokens.shape[1]):
            if t >= starts[b] and mask[b, t] and t > 0:
                m = min(m, logp[b, t - 1, tokens[b, t]])
            out[b, t] = linear[b, t] + a * max(m, -CLIP) / CLIP
    return out, linear


@pytest.mark.parametrize("tied", [True, False])
def test_likelihood_term_matches_the_numpy_oracle(tied, tmp_path):
    lm = build_model(_config(tied), head="lm", seed=3)
    save_pretrained(lm, str(tmp_path / "lm"))
    prm = load_pretrained(str(tmp_path / "lm"), head="scalar", likelihood_clip=CLIP, seed=1)
    assert float(prm.score_likelihood_weight[...][0]) == 1.0
    prm.score_likelihood_weight[...] = np.asarray([0.7], np.float32)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 1024, (3, 12)).astype(np.int32)
    mask = np.ones((3, 12), bool)
    mask[2, 9:] = False
    starts = np.asarray([4, 0, 7], np.int32)
    got = np.asarray(prm(tokens, mask_BxT=mask, response_start_B=starts)[0])
    want, linear = _oracle(load_pretrained(str(tmp_path / "lm")), prm, tokens, mask, starts)
    np.testing.assert_allclose(got[mask], want[mask], atol=1e-4)
    # The term is not idle: it is 0 before each row's start and falls as the response goes on.
    term = (want - linear)[mask]
    assert np.all((want - linear)[0, :4] == 0) and term.min() < -0.3
    with pytest.raises(ValueError, match="response_start_B"):
        prm(tokens, mask_BxT=mask)


@pytest.mark.parametrize("tied", [True, False])
def test_likelihood_prm_round_trips_and_the_critic_drops_the_term(tied, tmp_path):
    lm = build_model(_config(tied), head="lm", seed=3)
    save_pretrained(lm, str(tmp_path / "lm"))
    prm = load_pretrained(str(tmp_path / "lm"), head="scalar", likelihood_clip=CLIP, seed=1)
    prm.score_likelihood_weight[...] = np.asarray([1.9], np.float32)
    save_pretrained(prm, str(tmp_path / "prm"))
    back = load_pretrained(str(tmp_path / "prm"))
    assert back.likelihood_clip == CLIP
    tokens = np.random.default_rng(1).integers(0, 1024, (2, 10)).astype(np.int32)
    mask = np.ones_like(tokens, bool)
    starts = np.asarray([3, 5], np.int32)
    np.testing.assert_allclose(np.asarray(back(tokens, mask_BxT=mask, response_start_B=starts)[0]),
                               np.asarray(prm(tokens, mask_BxT=mask, response_start_B=starts)[0]),
                               atol=1e-6)
    with pytest.raises(Exception, match="prm_likelihood_clip"):
        load_pretrained(str(tmp_path / "prm"), likelihood_clip=CLIP + 1)
    # The critic copies the backbone and the linear head only: a plain value head.
    critic = init_critic("prm", prm=back)
    assert critic.likelihood_clip == 0 and not hasattr(critic, "score_likelihood_weight")
    linear = np.asarray(back.backbone(tokens, mask_BxT=mask)[0]) @ np.asarray(back.score_w[...])[:, 0]
    np.testing.assert_allclose(np.asarray(critic(tokens, mask_BxT=mask)[0]),
                               linear + float(back.score_b[...][0]), atol=1e-5)


def test_scoring_and_the_loss_pass_each_rows_response_start(tmp_path):
    tok = load_tokenizer()
    config = _config(True)
    lm = build_model(config, head="lm", seed=0)
    prm = ScalarHeadModel.from_backbone(lm, rngs=nnx.Rngs(0), likelihood_clip=CLIP)
    prompts = ["def f(xs):\n", "def long_name(xs, ys):\n    \"\"\"Doc.\"\"\"\n"]
    responses = ["    xs = [x + 1 for x in xs]\n    return xs\n", "    return ys\n"]
    scores = score_lines(prm, tok, prompts, responses, batch_size=4)
    rows = [{"response_id": str(i), "prompt": p, "response": r,
             "lines": [{"label": 1}] * len(s)} for i, (p, r, s) in
            enumerate(zip(prompts, responses, scores))]
    examples = [prm_example(tok, row, 64) for row in rows]
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
    values = np.asarray(losses.prm_values(prm, batch["tokens"], batch["mask"],
                                          batch["response_start"]))
    for i, e in enumerate(examples):
        at = np.nonzero(e["target_mask"])[0]
        np.testing.assert_allclose(values[i, at], scores[i], atol=1e-5)
        assert e["response_start"] == len(tok(prompts[i])["input_ids"])
    # Scoring through ShardedModel without the starts is an error, not a silent prompt scan.
    with pytest.raises(ValueError, match="response_start_B"):
        ShardedModel(prm).forward(batch["tokens"], batch["mask"])
    loss, metrics = losses.prm_mse_loss(prm, batch)
    assert np.isfinite(float(loss)) and float(metrics["lines"]) == sum(len(s) for s in scores)


def test_transformers_loads_the_linear_head_of_a_likelihood_prm(tmp_path):
    import torch
    import transformers

    lm = build_model(_config(True), head="lm", seed=3)
    save_pretrained(lm, str(tmp_path / "lm"))
    prm = load_pretrained(str(tmp_path / "lm"), head="scalar", likelihood_clip=CLIP, seed=1)
    save_pretrained(prm, str(tmp_path / "prm"))
    hf = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path / "prm").eval()
    tokens = np.random.default_rng(2).integers(0, 1024, (2, 9)).astype(np.int32)
    with torch.no_grad():
        got = hf(input_ids=torch.tensor(tokens, dtype=torch.long)).logits[..., 0].numpy()
    hidden = np.asarray(prm.backbone(tokens)[0])
    linear = hidden @ np.asarray(prm.score_w[...])[:, 0] + float(prm.score_b[...][0])
    np.testing.assert_allclose(got, linear, atol=1e-4)
