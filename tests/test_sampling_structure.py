"""The compiled sampler's structure: the decode loop has a known trip count and never copies the
KV cache, row counts compile a bounded number of programs, a growing cache and the sort-free
nucleus filter give exactly what the plain versions give."""

import math
import re

import numpy as np
import pytest

from prm_jax import sampling
from prm_jax.compile_stats import CompileStats
from prm_jax.models import DecoderConfig, build_model
from prm_jax.sampling import Sampler, SamplingConfig, row_bucket
from prm_jax.tokenizer import load_tokenizer

VOCAB = 1024


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin")


@pytest.fixture(scope="module")
def model():
    config = DecoderConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_layers=2,
                           num_heads=4, num_kv_heads=2, max_position_embeddings=512)
    return build_model(config, seed=0)


def _prompts(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, VOCAB, rng.integers(2, 12)).tolist() for _ in range(count)]


def _compiled_decode_chunks(monkeypatch, sampler, prompts, config):
    """HLO text of every decode-chunk program `generate` runs."""
    texts, original = [], sampling._decode_chunk

    def spy(*args, **kwargs):
        texts.append(original.lower(*args, **kwargs).compile().as_text())
        return original(*args, **kwargs)
    monkeypatch.setattr(sampling, "_decode_chunk", spy)
    sampler.generate(prompts, config)
    return texts


def test_decode_loop_has_a_known_trip_count_and_never_copies_the_cache(model, tokenizer, monkeypatch):
    chunk = 8
    sampler = Sampler(model, tokenizer, chunk=chunk)
    config = SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=20, eos_ids=())
    texts = _compiled_decode_chunks(monkeypatch, sampler, _prompts(3), config)
    assert texts
    cfg = model.config
    for text in texts:
        # The cache arrays of this program: [B, K, S, H] operands of the decode loop.
        shapes = set(re.findall(rf"f32\[(\d+),{cfg.num_kv_heads},(\d+),{cfg.dim_per_head}\]", text))
        assert shapes, "no [B,K,S,H] cache in the decode program"
        cache_elements = {int(b) * cfg.num_kv_heads * int(s) * cfg.dim_per_head for b, s in shapes}
        for line in text.splitlines():
            match = re.search(r"= f32\[([\d,]+)\]\{[\d,]*\} (copy|transpose)\(", line)
            if match:
                elements = math.prod(int(d) for d in match.group(1).split(","))
                assert elements not in cache_elements, f"cache-sized {match.group(2)}: {line[:200]}"
        outer = [line for line in text.splitlines() if " while(" in line and
                 any(f"[{b},{cfg.num_kv_heads},{s},{cfg.dim_per_head}]" in line for b, s in shapes)]
        assert len(outer) == 1
        assert f'"known_trip_count":{{"n":"{chunk}"}}' in outer[0]


def test_row_counts_compile_a_bounded_number_of_programs(model, tokenizer):
    sampler = Sampler(model, tokenizer, chunk=4, batch_multiple=1)
    config = SamplingConfig(temperature=1.0, max_new_tokens=6, eos_ids=())
    counts = range(1, 25)
    buckets = {row_bucket(c) for c in counts}
    with CompileStats() as stats:
        for count in counts:
            out = sampler.generate([[5, 6, 7]] * count, config, seed=count)
            assert len(out) == count
    # Per row bucket: the start program, one decode chunk, and at most a few small helpers.
    assert len(buckets) == 9
    assert stats.compiles <= 4 * len(buckets), stats.compiles


def test_row_bucket_pads_at_most_a_third():
    for count in range(1, 2000):
        bucket = row_bucket(count)
        assert bucket >= count and (count <= 2 or bucket <= math.ceil(1.5 * count))
    assert [row_bucket(c) for c in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_a_cache_grown_by_buckets_samples_what_a_full_cache_samples(model, tokenizer, temperature):
    config = SamplingConfig(temperature=temperature, top_p=0.95, max_new_tokens=70, n=2, eos_ids=())
    prompts = _prompts(3, seed=4)
    growing = Sampler(model, tokenizer, chunk=8, prompt_buckets=(16, 32, 64, 128))
    full = Sampler(model, tokenizer, chunk=8, prompt_buckets=(256,))
    a, b = growing.generate(prompts, config, seed=2), full.generate(prompts, config, seed=2)
    assert a.token_ids == b.token_ids and all(len(t) == 70 for t in a.token_ids)
    for x, y in zip(a.logprobs, b.logprobs):
        np.testing.assert_allclose(x, y, atol=1e-5)
