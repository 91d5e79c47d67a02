"""The compiled sampler's structure: the decode loop has a known trip count and never copies the
KV cache, row counts compile a bounded number of programs, a growing cache and the sort-free
nucleus filter give exactly what the plain versions give."""

import math
import re

import jax
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
    sampler = Sampler(model, tokenizer, chunk=16)
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
        # Loops carrying the cache: the early-exit loop over runs and the fixed-length run of
        # INNER_STEPS decode steps inside it.
        loops = [line for line in text.splitlines() if " while(" in line and
                 any(f"[{b},{cfg.num_kv_heads},{s},{cfg.dim_per_head}]" in line for b, s in shapes)]
        fixed = [line for line in loops
                 if f'"known_trip_count":{{"n":"{sampling.INNER_STEPS}"}}' in line]
        assert len(loops) == 2 and len(fixed) == 1, loops


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


def test_min_rows_pads_small_calls_to_one_shape(model, tokenizer):
    """With min_rows = 32 and n = 2, calls of 1…16 prompts all run as 16 prompts (one set of
    programs) and sample what an unpadded call samples; larger calls keep their buckets, and
    the memory bound still caps the padding."""
    sampler = Sampler(model, tokenizer, chunk=4, batch_multiple=1, min_rows=32)
    assert [sampler.batch_plan(c, 16, 2, 6)[1] for c in (1, 5, 16, 17, 30)] == [16, 16, 16, 24, 32]
    capped = Sampler(model, tokenizer, batch_multiple=1, min_rows=32, max_prefill_tokens=4 * 16)
    assert capped.batch_plan(1, 16, 2, 6) == (1, 4)
    config = SamplingConfig(temperature=1.0, n=2, max_new_tokens=6, eos_ids=())
    prompts = _prompts(16, seed=8)
    with CompileStats() as first:
        sampler.generate(prompts[:3], config, seed=3, detokenize=False)
    with CompileStats() as rest:
        outs = {c: sampler.generate(prompts[:c], config, seed=3, detokenize=False)
                for c in range(1, 17)}
    assert first.compiles > 0 and rest.compiles == 0, rest.by_function
    plain = Sampler(model, tokenizer, chunk=4, batch_multiple=1).generate(
        prompts[:5], config, seed=3, detokenize=False)
    assert outs[5].token_ids == plain.token_ids and outs[5].prompt_index == plain.prompt_index
    with pytest.raises(sampling.SamplingError, match="min_rows"):
        Sampler(model, tokenizer, min_rows=0)


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
    # Prompts fit the one 16-token bucket, and prompt + a chunk exceeds it: a full-length cache
    # from the start.
    full = Sampler(model, tokenizer, chunk=8, prompt_buckets=(16,))
    grown = []
    original = sampling._grow_cache
    sampling._grow_cache = lambda cache, **kw: grown.append(kw["max_len"]) or original(cache, **kw)
    try:
        b = full.generate(prompts, config, seed=2)
        assert grown == []
        a = growing.generate(prompts, config, seed=2)
        assert grown == [64, 88]  # 32 → 64 → the full 16 + 9 chunks × 8 slots
    finally:
        sampling._grow_cache = original
    assert a.token_ids == b.token_ids and all(len(t) == 70 for t in a.token_ids)
    for x, y in zip(a.logprobs, b.logprobs):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_a_mesh_keeps_one_decode_program_per_cache_size(model, tokenizer):
    """Under a (2,2,2) mesh the state keeps _start's row sharding through every chunk: the
    decode chunk compiles once per cache size, not again for a resharded cache."""
    from prm_jax import sharding

    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    sampler = Sampler(model, tokenizer, chunk=8, mesh=mesh, prompt_buckets=(16, 32, 64))
    config = SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=30, eos_ids=())
    with CompileStats() as stats:
        sampler.generate(_prompts(3), config, seed=1)
    # Cache sizes 32 (prompt 16 + chunk 8 → bucket 32) and then the full 16 + 4 × 8 slots.
    assert stats.by_function["jit(_decode_chunk)"] == 2, stats.by_function
    with CompileStats() as again:
        sampler.generate(_prompts(5), config, seed=2)
    assert again.compiles == 0, again.by_function


def test_short_generations_stop_early(model, tokenizer, monkeypatch):
    """max_new_tokens below the chunk gets a shorter chunk, and rows that all end at EOS stop
    the chunk after the run of INNER_STEPS steps in which they ended."""
    steps = []
    original = sampling._decode_chunk

    def spy(*args, **kwargs):
        state = original(*args, **kwargs)
        steps.append((kwargs["chunk"], int(state.step)))
        return state
    monkeypatch.setattr(sampling, "_decode_chunk", spy)
    sampler = Sampler(model, tokenizer, chunk=64)
    sampler.generate(_prompts(2), SamplingConfig(temperature=1.0, max_new_tokens=8, eos_ids=()))
    assert steps == [(8, 9)]
    steps.clear()
    first = sampler.generate([[5, 6, 7]], SamplingConfig(temperature=0.0, max_new_tokens=3,
                                                         eos_ids=())).token_ids[0]
    out = sampler.generate([[5, 6, 7]], SamplingConfig(temperature=0.0, max_new_tokens=100,
                                                       eos_ids=(first[2],)))
    assert out.token_ids[0][-1] == first[2] and out.stop_reasons == ["eos"]
    chunk, step = steps[-1]
    assert chunk == 64 and step <= 1 + sampling.INNER_STEPS


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (1.0, 0.9)])
def test_a_call_split_into_prefill_batches_samples_what_one_batch_samples(model, tokenizer,
                                                                          temperature, top_p):
    """max_prefill_tokens bounds the prompts prefilled at once; keys depend on each prompt's
    index in the call, so 13 prompts in batches of 4 give the tokens and log-probs of one
    batch."""
    prompts = _prompts(13, seed=3)
    config = SamplingConfig(temperature=temperature, top_p=top_p, n=2, max_new_tokens=12,
                            eos_ids=())
    whole = Sampler(model, tokenizer, max_prefill_tokens=None).generate(
        prompts, config, seed=5, detokenize=False)
    split = Sampler(model, tokenizer, max_prefill_tokens=4 * 16).generate(  # p_len 16: 4 prompts
        prompts, config, seed=5, detokenize=False)
    assert split.prompt_index == whole.prompt_index and split.sample_index == whole.sample_index
    assert split.token_ids == whole.token_ids
    for a, b in zip(split.logprobs, whole.logprobs):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(sampling.SamplingError, match="max_prefill_tokens"):
        Sampler(model, tokenizer, max_prefill_tokens=0)
    with pytest.raises(sampling.SamplingError, match="max_batch_bytes"):
        Sampler(model, tokenizer, max_batch_bytes=-1)
    # "auto": half the free accelerator memory, or the host budget where the backend reports
    # no memory statistics (the CPU).
    assert Sampler(model, tokenizer).max_batch_bytes == sampling.device_batch_bytes()
    if jax.local_devices()[0].memory_stats() is None:
        assert sampling.device_batch_bytes() == sampling.HOST_BATCH_BYTES


def test_a_memory_bound_splits_a_call_without_changing_its_samples(model, tokenizer):
    """max_batch_bytes bounds a batch by estimated memory after padding: 13 prompts (n = 2,
    padded to multiples of 4) under a budget of nine prompts' estimate run in two batches
    (7 + 6, both padded to 8) and sample what one batch samples; no budget gives a batch fewer prompts than one padding step."""
    prompts = _prompts(13, seed=4)
    config = SamplingConfig(temperature=1.0, n=2, max_new_tokens=12, eos_ids=())
    whole = Sampler(model, tokenizer, max_prefill_tokens=None, max_batch_bytes=None)
    assert whole.prompts_per_batch(16, 2, 12) > 13
    *_, full_len = whole._widths(16, 12)
    each = sampling.batch_bytes_per_prompt(model.config, 16, 2, full_len)
    for fit in (1, 3, 4, 5, 9, 17, 40):
        bounded = Sampler(model, tokenizer, max_prefill_tokens=None, max_batch_bytes=fit * each + 1)
        count = bounded.prompts_per_batch(16, 2, 12)
        assert bounded.padded_prompts(count, 2) == count <= max(fit, 4), (fit, count)
    split = Sampler(model, tokenizer, max_prefill_tokens=None, max_batch_bytes=9 * each + 1)
    assert split.prompts_per_batch(16, 2, 12) == 8
    # Quadratic in the prompt length: at 4× the length not even one step's prompts fit.
    assert split.prompts_per_batch(64, 2, 12) == 4
    a = whole.generate(prompts, config, seed=2, detokenize=False)
    b = split.generate(prompts, config, seed=2, detokenize=False)
    assert b.token_ids == a.token_ids and b.prompt_index == a.prompt_index


def test_a_split_call_runs_batches_of_one_shape(model, tokenizer):
    """Prompts beyond one batch run in equal batches padded to one shape (13 prompts under a
    bound of 12: 7 + 6, both padded to 8 — not 12 + a remainder of 1 padded to 4), so the
    split call reuses the programs of a single batch of that shape (a generation length no
    other test here uses, so the single batch compiles them)."""
    config = SamplingConfig(temperature=1.0, n=2, max_new_tokens=30, eos_ids=())
    sampler = Sampler(model, tokenizer, max_prefill_tokens=12 * 16, max_batch_bytes=None)
    assert sampler.batch_plan(13, 16, 2, 30) == (7, 8)
    assert sampler.batch_plan(12, 16, 2, 30) == (12, 12)
    assert sampler.batch_plan(3, 16, 2, 30) == (3, 4)
    for count in range(1, 200):  # as few batches as the bound allows, padded within it
        size, padded = sampler.batch_plan(count, 16, 2, 30)
        assert -(-count // size) == -(-count // 12) and size <= padded <= 12
        assert padded == sampler.padded_prompts(size, 2)
    prompts = _prompts(13, seed=6)
    with CompileStats() as single:
        sampler.generate(prompts[:8], config, seed=1, detokenize=False)
    with CompileStats() as split:
        out = sampler.generate(prompts, config, seed=1, detokenize=False)
    assert single.compiles > 0 and split.compiles == 0, (single.by_function, split.by_function)
    assert out.prompt_index == sorted(out.prompt_index) and len(set(out.prompt_index)) == 13


@pytest.mark.parametrize("prompts,p_len,n", [(16, 128, 2), (8, 256, 1), (8, 256, 4)])
def test_batch_memory_estimate_bounds_the_compiled_prefill(model, tokenizer, prompts, p_len, n):
    """The estimate per prompt is an upper bound of the compiled start program's memory
    (temporaries + outputs, from memory_analysis) per prompt, and within 3× of it."""
    import jax
    import jax.numpy as jnp

    sampler = Sampler(model, tokenizer)
    chunk, _, width, full_len = sampler._widths(p_len, 48)
    cache_len = sampler._cache_len(p_len + chunk, full_len)
    settings = {"temperature": jnp.float32(1.0), "top_p": jnp.float32(1.0),
                "max_new_tokens": jnp.int32(48)}
    compiled = sampling._start.lower(
        sampler.graphdef, sampler.params, jax.ShapeDtypeStruct((prompts, p_len), jnp.int32),
        jax.ShapeDtypeStruct((prompts, p_len), bool), sampling.seed_key(0), np.int32(prompts),
        np.int32(0), settings, jnp.asarray([1], jnp.int32), n=n, cache_len=cache_len,
        width=width, cache_dtype=None, mesh=None, top_k=0, use_top_p=False, greedy=False).compile()
    memory = compiled.memory_analysis()
    measured = (memory.temp_size_in_bytes + memory.output_size_in_bytes) / prompts
    estimate = sampling.batch_bytes_per_prompt(model.config, p_len, n, full_len)
    assert measured <= estimate <= 3 * measured, (measured, estimate)
