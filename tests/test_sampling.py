"""Sampler: greedy equals transformers, sampling draws the right distribution, log-probs and
continuations are exact, stop rules cut where they should, bad arguments are clear errors."""

import jax
import numpy as np
import pytest
from scipy import stats

from hf_fixtures import make_hf_model
from prm_jax import sharding
from prm_jax.models import DecoderConfig, build_model, load_pretrained
from prm_jax.logit_filters import warp_logits
from prm_jax.sampling import Sampler, SamplingConfig, SamplingError, _decode_chunk
from prm_jax.tokenizer import load_tokenizer

VOCAB = 1024  # the built-in tokenizer's size


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin")


@pytest.fixture(scope="module")
def tiny(tokenizer):
    config = DecoderConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_layers=2,
                           num_heads=4, num_kv_heads=2, max_position_embeddings=256)
    return build_model(config, seed=3)


def _prompts(seed=0, lengths=(9, 4, 1)):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, VOCAB, n).tolist() for n in lengths]


@pytest.mark.parametrize("variant", ["llama_untied_gqa_theta", "qwen2_tied_gqa"])
def test_greedy_equals_transformers_generate(variant, tokenizer, tmp_path):
    import torch

    hf = make_hf_model(variant, vocab_size=VOCAB)
    hf.save_pretrained(tmp_path)
    sampler = Sampler(load_pretrained(str(tmp_path)), tokenizer, chunk=5)
    prompts = _prompts()
    out = sampler.generate(prompts, SamplingConfig(temperature=0, max_new_tokens=16, eos_ids=()))
    width = max(map(len, prompts))
    ids = np.zeros((len(prompts), width), np.int64)
    mask = np.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
    ref = hf.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                      max_new_tokens=16, min_new_tokens=16, pad_token_id=0, eos_token_id=None)
    assert out.token_ids == ref[:, width:].tolist()
    assert out.stop_reasons == ["length"] * 3


def _forward_logprobs(model, prompt, response):
    tokens = np.asarray([prompt + response], np.int32)
    logits, _ = model(tokens)
    logp = jax.nn.log_softmax(np.asarray(logits[0], np.float64), axis=-1)
    return np.asarray([logp[len(prompt) - 1 + j, t] for j, t in enumerate(response)])


def test_logprobs_equal_a_separate_forward_pass(tiny, tokenizer):
    sampler = Sampler(tiny, tokenizer, chunk=7)
    prompts = _prompts(1)
    out = sampler.generate(prompts, SamplingConfig(temperature=1.0, max_new_tokens=20, n=2, eos_ids=()),
                           seed=5)
    assert len(out) == 6 and out.sample_index == [0, 1] * 3
    for i in range(len(out)):
        prompt = prompts[out.prompt_index[i]]
        expected = _forward_logprobs(tiny, prompt, out.token_ids[i])
        np.testing.assert_allclose(out.logprobs[i], expected, atol=1e-4)
        # At temperature 1 without filtering the sampling distribution is the model's.
        np.testing.assert_allclose(out.sampling_logprobs[i], expected, atol=1e-4)


@pytest.mark.parametrize("temperature, top_p, top_k", [(0.7, 0.8, 0), (1.3, 1.0, 5), (1.0, 0.5, 20)])
def test_sampling_draws_the_warped_softmax(tiny, tokenizer, temperature, top_p, top_k):
    """First tokens of many samples from one prompt follow softmax(logits/T) restricted to the
    top-k / nucleus set (chi-square goodness of fit; filtered tokens never appear)."""
    prompt = _prompts(2, lengths=(6,))[0]
    # A sharper model (scaled tied embeddings) so the nucleus is small and the test meaningful.
    tiny_scaled = _with_scaled_head(tiny, 20.0)
    logits, _ = tiny_scaled(np.asarray([prompt], np.int32))
    last = np.asarray(logits[0, -1], np.float64)
    sampler = Sampler(tiny_scaled, tokenizer)
    n = 3000
    out = sampler.generate([prompt], SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k,
                                                    max_new_tokens=1, n=n, eos_ids=()), seed=11)
    first = np.asarray([t[0] for t in out.token_ids])
    warped = np.asarray(warp_logits(last[None].astype(np.float32), temperature, top_k, top_p,
                                    top_p < 1.0))[0]
    probs = np.exp(warped - warped.max())
    probs /= probs.sum()
    support = np.nonzero(probs > 0)[0]
    assert set(first.tolist()) <= set(support.tolist())
    # Oracle for the filter itself, in NumPy.
    order = np.argsort(-last)
    p_sorted = np.exp((last[order] - last.max()) / temperature)
    p_sorted /= p_sorted.sum()
    keep = (np.cumsum(p_sorted) - p_sorted) < top_p
    if top_k:
        keep[top_k:] = False
    assert set(order[keep].tolist()) == set(support.tolist())
    observed = np.bincount(first, minlength=VOCAB)[support]
    expected = probs[support] * n
    if len(support) > 1:
        big = expected >= 5
        chi2 = ((observed[big] - expected[big]) ** 2 / expected[big]).sum()
        assert stats.chi2.sf(chi2, max(1, big.sum() - 1)) > 1e-3, (observed, expected)


def _with_scaled_head(model, factor):
    from flax import nnx

    clone = nnx.clone(model)
    norm = clone.backbone.final_norm.scale
    norm[...] = norm[...] * factor  # logits scale linearly with the final norm
    return clone


def test_continuation_from_prefix_equals_concatenated_prompt(tiny, tokenizer):
    sampler = Sampler(tiny, tokenizer, chunk=4)
    prompts = _prompts(3, lengths=(5, 3))
    prefixes = [[17, 18, 19], [20]]
    config = SamplingConfig(temperature=0.9, top_p=0.9, max_new_tokens=12, n=3, eos_ids=())
    continued = sampler.generate(prompts, config, seed=7, prefixes=prefixes)
    concatenated = sampler.generate([p + q for p, q in zip(prompts, prefixes)], config, seed=7)
    assert continued.token_ids == concatenated.token_ids
    assert continued.texts == concatenated.texts
    for a, b in zip(continued.logprobs, concatenated.logprobs):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_any_64_bit_seed(tiny, tokenizer):
    sampler = Sampler(tiny, tokenizer)
    config = SamplingConfig(temperature=1.0, max_new_tokens=6, eos_ids=())
    draw = lambda seed: sampler.generate(_prompts(4), config, seed=seed).token_ids
    big = draw(100003300009)
    assert big == draw(100003300009)
    assert big != draw(100003300009 % 2**32)  # seeds differing above bit 32 differ
    assert draw(5) != draw(5 + 2**32) and draw(2**64 - 1)
    for bad in (-1, 2**64, 1.5):
        with pytest.raises(SamplingError, match="seed must be an integer"):
            draw(bad)


def test_samples_do_not_depend_on_batch_composition(tiny, tokenizer):
    sampler = Sampler(tiny, tokenizer)
    prompts = _prompts(4)
    config = SamplingConfig(temperature=1.0, max_new_tokens=10, eos_ids=())
    together = sampler.generate(prompts, config, seed=3)
    alone = sampler.generate(prompts[:1], config, seed=3)
    assert together.token_ids[0] == alone.token_ids[0]


def test_eos_and_stop_strings_cut_exactly(tiny, tokenizer):
    sampler = Sampler(tiny, tokenizer, chunk=3)
    prompt = _prompts(5, lengths=(4,))
    free = sampler.generate(prompt, SamplingConfig(temperature=0, max_new_tokens=30, eos_ids=()))
    ids, text = free.token_ids[0], free.texts[0]
    # Offsets tile the text.
    assert "".join(text[s:e] for s, e in free.offsets[0]) == text
    # EOS: pretend the 6th generated token is EOS (first occurrence).
    eos = ids[5]
    first = ids.index(eos)
    out = sampler.generate(prompt, SamplingConfig(temperature=0, max_new_tokens=30, eos_ids=(eos,)))
    assert out.token_ids[0] == ids[:first + 1] and out.stop_reasons == ["eos"]
    assert out.texts[0] == tokenizer.decode(ids[:first])
    assert len(out.offsets[0]) == len(out.token_ids[0]) and len(out.logprobs[0]) == first + 1
    # Stop string: a piece of the free-running text starting in its middle.
    start = len(text) // 2
    stop = text[start:start + 3]
    cut = text.find(stop)
    out = sampler.generate(prompt, SamplingConfig(temperature=0, max_new_tokens=30, eos_ids=(),
                                                  stop_strings=(stop, "\x00never")))
    assert out.stop_reasons == ["stop_string"]
    assert out.texts[0] == text[:cut]
    kept = out.token_ids[0]
    assert kept == ids[:len(kept)]
    assert tokenizer.decode(kept).startswith(text[:cut]) and (
        len(kept) == 0 or not tokenizer.decode(kept[:-1]).startswith(text[:cut]) or cut == 0)
    # No stop string in range: runs to the length limit.
    out = sampler.generate(prompt, SamplingConfig(temperature=0, max_new_tokens=30, eos_ids=(),
                                                  stop_strings=("\x00never",)))
    assert out.token_ids[0] == ids and out.stop_reasons == ["length"]


def test_prompt_buckets_avoid_recompiling(tiny, tokenizer):
    sampler = Sampler(tiny, tokenizer)
    config = SamplingConfig(temperature=0.8, max_new_tokens=8, eos_ids=())
    sampler.generate(_prompts(6, lengths=(5, 3)), config)
    compiled = _decode_chunk._cache_size()
    sampler.generate(_prompts(7, lengths=(7, 2, 6)), config)  # same buckets (16 tokens, 8 rows)
    assert _decode_chunk._cache_size() == compiled


def test_sharded_sampling_matches_single_device(tiny, tokenizer):
    prompts = _prompts(8)
    config = SamplingConfig(temperature=0.8, top_k=50, max_new_tokens=10, n=2, eos_ids=())
    single = Sampler(tiny, tokenizer).generate(prompts, config, seed=1)
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    sharded = Sampler(tiny, tokenizer, mesh=mesh).generate(prompts, config, seed=1)
    assert sharded.token_ids == single.token_ids
    for a, b in zip(sharded.logprobs, single.logprobs):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_few_prompts_with_many_samples_on_a_wide_mesh(tiny, tokenizer):
    """2 prompts × n=4 on 8-way data parallelism: the prefill's prompt rows are padded to the
    devices too (rows = 8 would divide, prompts = 2 would not)."""
    prompts = _prompts(2, lengths=(9, 4))
    config = SamplingConfig(temperature=0.8, max_new_tokens=6, n=4, eos_ids=())
    single = Sampler(tiny, tokenizer).generate(prompts, config, seed=3)
    mesh = sharding.make_mesh({"data": 1, "fsdp": 8, "tensor": 1})
    wide = Sampler(tiny, tokenizer, mesh=mesh).generate(prompts, config, seed=3)
    assert len(wide) == 4 * len(prompts) and wide.prompt_index == single.prompt_index
    assert wide.token_ids == single.token_ids


def test_bad_arguments_are_clear_errors(tiny, tokenizer):
    for kwargs, message in [
        (dict(top_p=0.0), "top_p must be in"), (dict(top_p=1.5), "top_p must be in"),
        (dict(temperature=-1.0), "temperature must be"), (dict(top_k=-2), "top_k must be"),
        (dict(max_new_tokens=0), "max_new_tokens must be"), (dict(n=0), "n must be"),
        (dict(stop_strings=("",)), "stop_strings must be"),
    ]:
        with pytest.raises(SamplingError, match=message):
            SamplingConfig(**kwargs)
    sampler = Sampler(tiny, tokenizer)
    with pytest.raises(SamplingError, match="exceeds the model's max_position_embeddings=256"):
        sampler.generate([[5] * 200], SamplingConfig(max_new_tokens=100))
    with pytest.raises(SamplingError, match="outside"):
        sampler.generate([[5, VOCAB + 3]])
    with pytest.raises(SamplingError, match="prompt 0 is empty"):
        sampler.generate([[]])
    with pytest.raises(SamplingError, match="2 prefixes for 1 prompts"):
        sampler.generate([[5]], prefixes=["a", "b"])
    with pytest.raises(SamplingError, match="LM head"):
        Sampler(build_model(tiny.config, head="scalar"), tokenizer)
    for kwargs, message in [(dict(chunk=0), "chunk must be"), (dict(batch_multiple=-1), "batch_multiple"),
                            (dict(prompt_buckets=()), "prompt_buckets")]:
        with pytest.raises(SamplingError, match=message):
            Sampler(tiny, tokenizer, **kwargs)


def test_update_params_samples_new_weights_without_recompiling(tiny, tokenizer):
    from flax import nnx

    config = SamplingConfig(temperature=0.0, max_new_tokens=8, eos_ids=())
    other = build_model(tiny.config, seed=11)
    expected = Sampler(other, tokenizer).generate(_prompts(9), config).token_ids
    sampler = Sampler(tiny, tokenizer)
    before = sampler.generate(_prompts(9), config).token_ids
    compiled = _decode_chunk._cache_size()
    sampler.update_params(nnx.state(other, nnx.Param))
    after = sampler.generate(_prompts(9), config).token_ids
    assert after == expected and after != before
    assert _decode_chunk._cache_size() == compiled
