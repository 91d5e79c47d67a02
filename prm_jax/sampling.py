"""On-device sampling: one jitted prefill, then fixed-length decode chunks over the KV cache.

    sampler = Sampler(model, tokenizer)
    out = sampler.generate(["def add(a, b):\\n"], SamplingConfig(temperature=0.8, top_p=0.95,
                           max_new_tokens=128, n=4, stop_strings=("\\ndef ",)), seed=0)
    out.texts, out.token_ids, out.logprobs, out.stop_reasons, out.offsets

Design:
* Prompts are left-padded to a length bucket and the prompt count to a row bucket
  (`row_bucket`: 1, 2, 3, 4, 6, 8, 12, …, times the data-parallel multiple), so new prompt
  lengths and counts rarely recompile: the jitted functions are specialised on (row bucket,
  prompt bucket, cache bucket, max_new_tokens, chunk) only. `min_rows` pads every call to at
  least that many rows: where small batches are latency-bound (an accelerator; a caller with
  many small calls of varying size, as labelling's rounds), padding costs little and saves the
  compiles of the smaller buckets.
* `_start` is one call: cache init, prefill of each distinct prompt, its cache repeated for its
  `n` samples, and the first token sampled from the last prompt position's logits.
* `_decode_chunk` runs exactly `chunk` steps in a loop with a known trip count (finished rows are
  masked); between chunks the host checks stop strings and whether every row is done, so early
  exit happens at chunk boundaries and no Python dispatch happens per token. Each step feeds the
  last sampled token and samples the next from the LM head in the same iteration.
* The cache starts at a bucket of the prompt + one chunk and grows by buckets between chunks
  (`KVCache.grow`), so attention reads at most a bucket's worth of slots beyond those written;
  its `[B,K,S,H]` layout is read by attention without a copy.
* A call is split into batches of prompts bounded by prompt tokens and by estimated memory
  (`batch_bytes_per_prompt`: prefill attention is quadratic in the prompt length), with the
  samples of one batch: keys depend on each prompt's index in the call.
* Top-p and the draw itself use `prm_jax.logit_filters` (exact; no sort of the vocabulary,
  one uniform number per row and step).
* Every sequence has its own PRNG key (`fold_in(seed key, row)`, then `fold_in(·, step)`), so a
  sample does not depend on what else is in the batch: continuing from a prefix equals sampling
  from the concatenated prompt.
* `logprobs[t] = log softmax(logits_t)[token_t]` under the model (temperature 1, no filtering):
  what PPO's ratio needs; `sampling_logprobs` are under the warped distribution actually sampled.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prm_jax.distributed import to_host
from prm_jax.logit_filters import sample_with_log_prob, warp_logits
from prm_jax.models.kv_cache import KVCache
from prm_jax.models.sharded import ShardedModel

STOP_EOS, STOP_STRING, STOP_LENGTH = "eos", "stop_string", "length"
# Steps of the innermost fixed-length decode loop; a chunk stops early after any such run.
INNER_STEPS = 8
_DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# Prompt tokens (prompts × padded prompt length) prefilled per batch: a generate call with more
# is split into batches (same samples: keys depend on the prompt's index in the call).
MAX_PREFILL_TOKENS = 1 << 20
# Estimated memory of one batch per device (`batch_bytes_per_prompt` × prompts / data-parallel
# devices): the second bound on a batch, since prefill attention grows with the square of the
# prompt length. "auto": half of an accelerator's memory limit, or this on a host without one.
HOST_BATCH_BYTES = 4 << 30
# Live float32 [heads, L, L] attention arrays per prompt in the prefill (scores, probabilities
# and their copies, across layers as XLA schedules them): measured from compiled programs'
# memory_analysis on XLA:CPU (4.3 for a 2-layer model), rounded up.
PREFILL_ATTENTION_ARRAYS = 5


class SamplingError(ValueError):
    """Invalid sampling arguments."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How to sample. temperature 0 means greedy."""

    temperature: float = 1.0
    # Nucleus sampling: keep the smallest set of tokens with probability mass >= top_p.
    top_p: float = 1.0
    # Keep only the k most likely tokens (0 = off).
    top_k: int = 0
    max_new_tokens: int = 256
    # Samples per prompt (prefill is shared).
    n: int = 1
    # Token ids that end a sequence (default: the tokenizer's EOS).
    eos_ids: tuple[int, ...] | None = None
    # Text that ends a sequence; the returned text stops right before it.
    stop_strings: tuple[str, ...] = ()

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and self.temperature >= 0
                and math.isfinite(self.temperature)):
            raise SamplingError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not (0 < self.top_p <= 1):
            raise SamplingError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise SamplingError(f"top_k must be an integer >= 0, got {self.top_k!r}")
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens > 0):
            raise SamplingError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not (isinstance(self.n, int) and self.n > 0):
            raise SamplingError(f"n must be a positive integer, got {self.n!r}")
        if any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise SamplingError(f"stop_strings must be non-empty strings, got {self.stop_strings!r}")


@dataclasses.dataclass
class SampleBatch:
    """One row per (prompt, sample). Token-level fields cover the response only."""

    prompt_index: list[int]
    sample_index: list[int]
    token_ids: list[list[int]]
    texts: list[str]
    logprobs: list[np.ndarray]
    sampling_logprobs: list[np.ndarray]
    stop_reasons: list[str]
    # offsets[i][j] = (start, end) characters of response token j in texts[i] (clipped to it).
    offsets: list[list[tuple[int, int]]]

    def texts_by_prompt(self, num_prompts: int) -> list[list[str]]:
        """texts[p] = the texts sampled for prompt p, in sample order."""
        grouped: list[list[str]] = [[] for _ in range(num_prompts)]
        for p, text in zip(self.prompt_index, self.texts):
            grouped[p].append(text)
        return grouped

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.token_ids]

    def __len__(self) -> int:
        return len(self.texts)


@flax.struct.dataclass
class _State:
    cache: KVCache
    # The last sampled token of each row: the next decode step's input.
    token_B: jax.Array
    tokens_BxN: jax.Array
    logprobs_BxN: jax.Array
    sampling_logprobs_BxN: jax.Array
    # Tokens sampled so far (the column the next one is written to).
    step: jax.Array
    length_B: jax.Array
    done_B: jax.Array
    eos_B: jax.Array
    keys_B: jax.Array


def _choose(logits_BxV: jax.Array, state: _State, settings: dict, eos_ids: jax.Array, *,
            top_k: int, use_top_p: bool, greedy: bool) -> _State:
    """Samples the next token of every live row from its logits and records it at `step`."""
    logits_BxV = logits_BxV.astype(jnp.float32)
    live_B = ~state.done_B
    if greedy:
        token_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
        sampling_lp_B = jnp.zeros(token_B.shape, jnp.float32)
    else:
        warped = warp_logits(logits_BxV, settings["temperature"], top_k, settings["top_p"], use_top_p,
                             active_B=live_B)
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, state.step))(state.keys_B)
        token_B, sampling_lp_B = sample_with_log_prob(step_keys, warped)
    # log softmax(logits)[token], without materialising the [B,V] log-probabilities.
    lp_B = (jnp.take_along_axis(logits_BxV, token_B[:, None], axis=-1)[:, 0]
            - jax.nn.logsumexp(logits_BxV, axis=-1))
    idx = state.step
    tokens = state.tokens_BxN.at[:, idx].set(jnp.where(live_B, token_B, 0))
    logprobs = state.logprobs_BxN.at[:, idx].set(jnp.where(live_B, lp_B, 0.0))
    sampling_lps = state.sampling_logprobs_BxN.at[:, idx].set(jnp.where(live_B, sampling_lp_B, 0.0))
    is_eos = jnp.any(token_B[:, None] == eos_ids[None, :], axis=-1) & live_B
    at_length = idx + 1 >= settings["max_new_tokens"]
    return state.replace(
        token_B=token_B, tokens_BxN=tokens, logprobs_BxN=logprobs,
        sampling_logprobs_BxN=sampling_lps, step=idx + 1,
        length_B=state.length_B + live_B.astype(jnp.int32),
        done_B=state.done_B | is_eos | at_length, eos_B=state.eos_B | is_eos)


def _constrain_rows(tree, mesh):
    """Every array with a leading row axis split over (data, fsdp); scalars replicated."""
    if mesh is None:
        return tree
    from prm_jax import sharding

    def one(x):
        spec = sharding.batch_sharding(mesh, x.ndim) if x.ndim else sharding.replicated(mesh)
        return jax.lax.with_sharding_constraint(x, spec)
    return jax.tree.map(one, tree)


@functools.partial(jax.jit, static_argnames=(
    "graphdef", "n", "cache_len", "width", "cache_dtype", "mesh", "top_k", "use_top_p", "greedy"))
def _start(graphdef, params, tokens_PxL, mask_PxL, base_key, n_prompts, prompt_offset, settings,
           eos_ids, *, n: int, cache_len: int, width: int, cache_dtype, mesh, top_k: int,
           use_top_p: bool, greedy: bool) -> _State:
    """One call: cache init, prefill of each distinct prompt, its cache repeated for its `n`
    samples (row r is sample r mod n of prompt r div n), and the first token of every row
    sampled. Rows of padding prompts (index ≥ n_prompts) start done. `prompt_offset` is the
    index of this batch's first prompt in the caller's list (batches of one generate call)."""
    model = nnx.merge(graphdef, params)
    prompts = tokens_PxL.shape[0]
    row_prompt = jnp.arange(prompts * n) // n
    # Key of (prompt p, sample s) depends only on (seed, p, s): batch-composition invariant,
    # so splitting a call into batches samples what one batch would.
    keys_B = jax.vmap(lambda p, s: jax.random.fold_in(jax.random.fold_in(base_key, p), s))(
        row_prompt + prompt_offset, jnp.arange(prompts * n) % n)
    cache = _constrain_rows(KVCache.init(model.config, prompts, cache_len, cache_dtype), mesh)
    hidden_PxLxD, cache = model.backbone(tokens_PxL, mask_BxT=mask_PxL, cache=cache,
                                         fresh_cache=True)
    logits = model.logits_from_hidden(hidden_PxLxD[:, -1])
    if n > 1:
        cache = cache.map_rows(lambda x: jnp.repeat(x, n, axis=0))
        logits = jnp.repeat(logits, n, axis=0)
    rows = prompts * n
    state = _State(
        cache=cache, token_B=jnp.zeros((rows,), jnp.int32),
        tokens_BxN=jnp.zeros((rows, width), jnp.int32),
        logprobs_BxN=jnp.zeros((rows, width), jnp.float32),
        sampling_logprobs_BxN=jnp.zeros((rows, width), jnp.float32),
        step=jnp.zeros((), jnp.int32), length_B=jnp.zeros((rows,), jnp.int32),
        done_B=row_prompt >= n_prompts, eos_B=jnp.zeros((rows,), bool), keys_B=keys_B)
    state = _constrain_rows(state, mesh)
    return _choose(logits, state, settings, eos_ids, top_k=top_k, use_top_p=use_top_p,
                   greedy=greedy)


@functools.partial(jax.jit, static_argnames=("graphdef", "chunk", "inner", "mesh", "top_k",
                                             "use_top_p", "greedy"),
                   donate_argnames=("state",))
def _decode_chunk(graphdef, params, state: _State, settings: dict, eos_ids, *, chunk: int,
                  inner: int, mesh, top_k: int, use_top_p: bool, greedy: bool) -> _State:
    """Up to `chunk` decode steps: `chunk / inner` runs of exactly `inner` steps (loops with a
    known trip count; finished rows are masked), stopping after the run in which every row
    finished. Each step feeds the last sampled token through the model and samples the next
    from the LM head's output in the same iteration: no logits are carried between steps.
    The state keeps `_start`'s row sharding, so every chunk runs one compiled program."""
    model = nnx.merge(graphdef, params)

    def step(_, s: _State) -> _State:
        live_B = ~s.done_B
        hidden_Bx1xD, cache = model.backbone(s.token_B[:, None], mask_BxT=live_B[:, None],
                                             cache=s.cache)
        return _choose(model.logits_from_hidden(hidden_Bx1xD[:, 0]), s.replace(cache=cache),
                       settings, eos_ids, top_k=top_k, use_top_p=use_top_p, greedy=greedy)

    end = state.step + chunk

    def run(s: _State) -> _State:
        return _constrain_rows(jax.lax.fori_loop(0, inner, step, s), mesh)

    def more(s: _State):
        return (s.step < end) & ~jnp.all(s.done_B)

    return _constrain_rows(jax.lax.while_loop(more, run, _constrain_rows(state, mesh)), mesh)


@functools.partial(jax.jit, static_argnames=("max_len", "mesh"))
def _grow_cache(cache: KVCache, *, max_len: int, mesh) -> KVCache:
    return _constrain_rows(cache.grow(max_len), mesh)


def seed_key(seed: int) -> jax.Array:
    """The PRNG key of a seed in [0, 2⁶⁴): its low 32 bits make the key, its high 32 bits are
    folded in, so seeds that differ only above bit 32 give different samples."""
    if not (isinstance(seed, (int, np.integer)) and 0 <= int(seed) < 1 << 64):
        raise SamplingError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    seed = int(seed)
    return jax.random.fold_in(jax.random.key(seed & 0xFFFFFFFF), seed >> 32)


def batch_bytes_per_prompt(config, p_len: int, n: int, cache_len: int, cache_itemsize: int = 4) -> int:
    """Estimated peak bytes one prompt adds to a generate batch (an upper estimate, checked
    against compiled programs in the tests):

        5 · heads · L² · 4        prefill attention (PREFILL_ATTENTION_ARRAYS float32 arrays)
      + L · (3·D + 2·F) · 4       prefill activations (residual, q/k/v/out, MLP)
      + max(n + 1, 2n) · C        KV cache: the prompt's row and its n rows in the prefill,
                                  the old and the grown n rows while the cache grows
      + n · (4 · V · 4 + 3 · W · 4)   logits and their warped copies; tokens and log-probs

    with L the padded prompt length, C = 2 · layers · kv_heads · head_dim · S · itemsize one
    row's cache of S slots, and W = S − L the sampled width."""
    attention = PREFILL_ATTENTION_ARRAYS * config.num_heads * p_len * p_len * 4
    activations = p_len * (3 * config.hidden_size + 2 * config.intermediate_size) * 4
    cache_row = 2 * config.num_layers * config.num_kv_heads * config.dim_per_head * cache_len * cache_itemsize
    per_row = 4 * config.vocab_size * 4 + 3 * max(cache_len - p_len, 1) * 4
    return attention + activations + max(n + 1, 2 * n) * cache_row + n * per_row


def device_batch_bytes() -> int:
    """Batch memory per device: half of what is free of the first local device's memory limit
    where the runtime reports one (GPU, TPU; the loaded weights are in use by then), else
    HOST_BATCH_BYTES."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if not stats.get("bytes_limit"):
        return HOST_BATCH_BYTES
    return max(1, (int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))) // 2)


def _floor_row_bucket(count: int) -> int:
    """The largest `row_bucket` value ≤ count (≥ 1): a batch of it is not padded further."""
    best = 1
    while row_bucket(best + 1) <= count:
        best = row_bucket(best + 1)
    return best


def _bucket(value: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if b >= value:
            return b
    return value


def row_bucket(count: int) -> int:
    """Smallest number ≥ count of the form 2^i or 3·2^i (1, 2, 3, 4, 6, 8, 12, 16, 24, …):
    at most a third of the rows are padding, and row counts 1..N compile O(log N) programs."""
    bucket = 1
    while True:
        if bucket >= count:
            return bucket
        if bucket >= 2 and bucket * 3 // 2 >= count:
            return bucket * 3 // 2
        bucket *= 2


class Sampler:
    """Generates from a `CausalLM` with its tokenizer; see the module docstring."""

    def __init__(self, model, tokenizer, *, mesh=None, prompt_buckets: Sequence[int] = _DEFAULT_BUCKETS,
                 batch_multiple: int = 8, chunk: int = 64, cache_dtype=None,
                 max_prefill_tokens: int | None = MAX_PREFILL_TOKENS,
                 max_batch_bytes: int | str | None = "auto", min_rows: int = 1):
        if hasattr(model, "score_w"):
            raise SamplingError("sampling needs a model with an LM head (CausalLM), not a scalar head")
        if len(tokenizer) > model.config.vocab_size:
            raise SamplingError(f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size "
                                f"is {model.config.vocab_size}")
        if max_prefill_tokens is not None and not (isinstance(max_prefill_tokens, int)
                                                   and max_prefill_tokens > 0):
            raise SamplingError(f"max_prefill_tokens must be a positive integer or None, got "
                                f"{max_prefill_tokens!r}")
        if max_batch_bytes == "auto":
            max_batch_bytes = device_batch_bytes()
        if max_batch_bytes is not None and not (isinstance(max_batch_bytes, int)
                                                and max_batch_bytes > 0):
            raise SamplingError(f"max_batch_bytes must be a positive integer, 'auto' or None, got "
                                f"{max_batch_bytes!r}")
        self.max_prefill_tokens = max_prefill_tokens
        self.max_batch_bytes = max_batch_bytes
        for name, value in (("chunk", chunk), ("batch_multiple", batch_multiple),
                            ("min_rows", min_rows)):
            if not (isinstance(value, int) and value > 0):
                raise SamplingError(f"{name} must be a positive integer, got {value!r}")
        if not prompt_buckets or any(not (isinstance(b, int) and b > 0) for b in prompt_buckets):
            raise SamplingError(f"prompt_buckets must be positive integers, got {prompt_buckets!r}")
        self.model, self.tokenizer, self.mesh = model, tokenizer, mesh
        self.config = model.config
        self.prompt_buckets = tuple(sorted(prompt_buckets))
        self.batch_multiple = batch_multiple
        self.chunk = chunk
        self.min_rows = min_rows
        self.cache_dtype = cache_dtype
        self.sharded = ShardedModel(model, mesh)
        self.graphdef = self.sharded.graphdef
        # Rows of the batch are split over (data, fsdp): the prefill's prompt rows as well as
        # the decode's prompt × n rows must be multiples of it.
        self.data_parallel = mesh.shape["data"] * mesh.shape["fsdp"] if mesh is not None else 1
        self.batch_multiple = math.lcm(batch_multiple, self.data_parallel)

    @property
    def params(self) -> nnx.State:
        return self.sharded.params

    def update_params(self, params: nnx.State) -> None:
        """Samples from new weights of the same model (e.g. after a policy update) without
        recompiling: they are placed with the same shardings."""
        self.sharded.update_params(params)

    # ------------------------------------------------------------------ tokenisation
    def encode(self, prompts, *, special_tokens: bool = True) -> list[list[int]]:
        """Token ids of strings (or validated id lists); special tokens (BOS) only if asked."""
        out = []
        for i, p in enumerate(prompts):
            if isinstance(p, str):
                out.append(list(self.tokenizer(p, add_special_tokens=special_tokens)["input_ids"]))
            elif isinstance(p, (list, tuple, np.ndarray)):
                ids = [int(t) for t in p]
                if any(t < 0 or t >= self.config.vocab_size for t in ids):
                    raise SamplingError(f"prompt {i} has token ids outside [0, {self.config.vocab_size})")
                out.append(ids)
            else:
                raise SamplingError(f"prompt {i} must be a string or a list of token ids, got "
                                    f"{type(p).__name__}")
            if not out[-1]:
                raise SamplingError(f"prompt {i} is empty")
        return out

    # ------------------------------------------------------------------ generation
    def default_eos_ids(self) -> tuple[int, ...]:
        """The tokenizer's EOS and every EOS id of the model's config (config.json and
        generation_config.json), so instruct checkpoints stop on each of them."""
        ids = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return tuple(ids + [i for i in self.config.eos_ids if i not in ids])

    def generate(self, prompts, config: SamplingConfig = SamplingConfig(), *, seed: int = 0,
                 prefixes=None, detokenize: bool = True) -> SampleBatch:
        """Samples `config.n` continuations of each prompt.

        prefixes: optional partial responses (strings or token ids), one per prompt; generation
        continues after prompt + prefix and returns only the continuation.
        detokenize: False skips texts and offsets (token ids and log-probs only); stop strings
        need it.
        """
        if config.stop_strings and not detokenize:
            raise SamplingError("stop_strings need detokenize=True")
        ids = self.encode(prompts)
        if prefixes is not None:
            if len(prefixes) != len(ids):
                raise SamplingError(f"{len(prefixes)} prefixes for {len(ids)} prompts")
            pre = [[] if (isinstance(p, str) and not p) else self.encode([p], special_tokens=False)[0]
                   for p in prefixes]
            ids = [a + b for a, b in zip(ids, pre)]
        eos = config.eos_ids if config.eos_ids is not None else self.default_eos_ids()
        eos_arr = jnp.asarray(list(eos) or [-1], jnp.int32)
        longest = max(len(x) for x in ids)
        p_len = _bucket(longest, self.prompt_buckets)
        max_new = config.max_new_tokens
        if longest + max_new > self.config.max_position_embeddings:
            raise SamplingError(
                f"prompt of {longest} tokens + max_new_tokens={max_new} exceeds the model's "
                f"max_position_embeddings={self.config.max_position_embeddings}")
        size, padded = self.batch_plan(len(ids), p_len, config.n, max_new)
        out = SampleBatch([], [], [], [], [], [], [], [])
        for first in range(0, len(ids), size):
            part = self._generate_batch(ids[first:first + size], first, p_len, padded, config,
                                        eos_arr, seed, detokenize)
            out.prompt_index.extend(first + p for p in part.prompt_index)
            for field in ("sample_index", "token_ids", "texts", "logprobs", "sampling_logprobs",
                          "stop_reasons", "offsets"):
                getattr(out, field).extend(getattr(part, field))
        return out

    def prompts_per_batch(self, p_len: int, n: int, max_new_tokens: int) -> int:
        """Prompts prefilled and sampled together: at most `max_prefill_tokens` prompt tokens
        and `max_batch_bytes` of estimated memory per data-parallel device
        (`batch_bytes_per_prompt`), counted after padding (`padded_prompts`), so a batch of this
        many prompts is not padded beyond the bounds — except that no batch has fewer prompts
        than one padding step. One prompt length for the whole call."""
        limit = 1 << 62
        if self.max_prefill_tokens is not None:
            limit = min(limit, self.max_prefill_tokens // p_len)
        if self.max_batch_bytes is not None:
            *_, full_len = self._widths(p_len, max_new_tokens)
            itemsize = jnp.dtype(self.cache_dtype or self.config.compute_dtype).itemsize
            each = batch_bytes_per_prompt(self.config, p_len, n, full_len, itemsize)
            limit = min(limit, self.max_batch_bytes * self.data_parallel // each)  # rows split over devices
        step = self._prompt_step(n)
        return step * _floor_row_bucket(max(1, limit // step))

    def batch_plan(self, count: int, p_len: int, n: int, max_new_tokens: int) -> tuple[int, int]:
        """(prompts per batch, padded prompts per batch) for `count` prompts: as few batches as
        `prompts_per_batch` allows, of equal size (the last possibly smaller), every one padded
        to the same shape — so a call split into batches compiles the programs of one batch,
        not a second set for a remainder. Padding stays within one row bucket of the batch
        size, or reaches `min_rows` rows, and never goes beyond `prompts_per_batch`."""
        per_batch = self.prompts_per_batch(p_len, n, max_new_tokens)
        count = max(count, 1)
        batches = -(-count // per_batch)
        size = -(-count // batches)
        floor = -(-self.min_rows // n)  # prompts whose rows reach min_rows
        return size, min(self.padded_prompts(max(size, floor), n), per_batch)

    def _prompt_step(self, n: int) -> int:
        """Prompt counts are padded to multiples of this: rows = prompts × n is then a multiple
        of batch_multiple and the prefill's prompt rows divide over the data-parallel devices."""
        return math.lcm(self.batch_multiple // math.gcd(self.batch_multiple, n), self.data_parallel)

    def padded_prompts(self, count: int, n: int) -> int:
        """Prompts a batch of `count` prompts runs with padding: a row bucket of multiples of
        the step, so varying prompt counts compile a bounded number of programs."""
        step = self._prompt_step(n)
        return step * row_bucket(-(-count // step))

    def _widths(self, p_len: int, max_new: int) -> tuple[int, int, int, int]:
        """(chunk, inner, width, full cache length) of a generation of `max_new` tokens: a
        chunk no longer than the generation needs (a power of two, a multiple of the inner run
        length `inner` ≤ INNER_STEPS), token 0 from the prefill and `chunk` tokens per decode
        chunk."""
        chunk = min(self.chunk, 1 << max(0, (max_new - 2).bit_length()))
        inner = min(INNER_STEPS, chunk)
        chunk = inner * -(-chunk // inner)
        width = 1 + chunk * -(-(max_new - 1) // chunk)
        return chunk, inner, width, p_len + width - 1

    def _generate_batch(self, ids, prompt_offset: int, p_len: int, b_prompts: int,
                        config: SamplingConfig, eos_arr, seed: int, detokenize: bool) -> SampleBatch:
        """`generate` for prompts `ids` (token lists) left-padded to `p_len`, padded with dummy
        prompts to `b_prompts`; prompt indices in the result are local to this batch."""
        max_new = config.max_new_tokens
        n_prompts = len(ids)
        tokens = np.zeros((b_prompts, p_len), np.int32)
        mask = np.zeros((b_prompts, p_len), bool)
        for i, x in enumerate(ids):
            tokens[i, p_len - len(x):] = x
            mask[i, p_len - len(x):] = True
        tokens[n_prompts:, -1] = 0  # padding rows: one dummy token so they stay well-defined
        mask[n_prompts:, -1] = True

        n = config.n
        rows = b_prompts * n
        row_prompt = np.repeat(np.arange(b_prompts), n)
        row_sample = np.tile(np.arange(n), b_prompts)
        chunk, inner, width, full_len = self._widths(p_len, max_new)
        settings = {"temperature": jnp.float32(config.temperature),
                    "top_p": jnp.float32(config.top_p), "max_new_tokens": jnp.int32(max_new)}
        static = dict(top_k=config.top_k, use_top_p=config.top_p < 1.0,
                      greedy=config.temperature == 0)
        state = _start(self.graphdef, self.params, self._place(tokens), self._place(mask),
                       seed_key(seed), np.int32(n_prompts), np.int32(prompt_offset), settings,
                       eos_arr,
                       n=n, cache_len=self._cache_len(p_len + chunk, full_len), width=width,
                       cache_dtype=self.cache_dtype, mesh=self.mesh, **static)
        stopped_by_string = np.zeros(rows, bool)
        done, step = to_host(state.done_B), 1
        while not (done.all() or step >= max_new):
            # Slots needed after this chunk: the prompt, and every sampled token but the last.
            needed = p_len + step - 1 + chunk
            if needed > state.cache.max_len:
                state = state.replace(cache=_grow_cache(
                    state.cache, max_len=self._cache_len(needed, full_len), mesh=self.mesh))
            state = _decode_chunk(self.graphdef, self.params, state, settings, eos_arr,
                                  chunk=chunk, inner=inner, mesh=self.mesh, **static)
            step = int(state.step)
            done = to_host(state.done_B)
            if config.stop_strings:
                newly = self._stop_string_rows(state, done, stopped_by_string, config.stop_strings)
                if newly.any():
                    stopped_by_string |= newly
                    state = state.replace(done_B=state.done_B | self._place(newly))
                    done = done | newly
        return self._collect(state, rows, n_prompts, row_prompt, row_sample, config, detokenize)

    def _place(self, array):
        if self.mesh is None:
            return jax.device_put(array)
        from prm_jax import sharding
        return jax.device_put(array, sharding.batch_sharding(self.mesh, array.ndim))

    def _cache_len(self, needed: int, full_len: int) -> int:
        """Cache slots for `needed` tokens: the next bucket, at most what the whole generation
        writes. Attention reads every slot, so a cache grown by buckets keeps each decode step's
        attention within a bucket of the written length."""
        bucket = _bucket(needed, self.prompt_buckets)
        return full_len if bucket == needed and needed > self.prompt_buckets[-1] else min(bucket, full_len)

    def _stop_string_rows(self, state, done, already, stop_strings) -> np.ndarray:
        """Rows still running whose text so far contains a stop string."""
        tokens = to_host(state.tokens_BxN)
        lengths = to_host(state.length_B)
        hit = np.zeros(len(done), bool)
        for r in np.nonzero(~done & ~already)[0]:
            text = self.tokenizer.decode(tokens[r, :lengths[r]].tolist())
            hit[r] = any(s in text for s in stop_strings)
        return hit

    def _collect(self, state, rows, n_prompts, row_prompt, row_sample, config, detokenize=True):
        tokens = to_host(state.tokens_BxN)
        lengths = to_host(state.length_B)
        lps = to_host(state.logprobs_BxN)
        slps = to_host(state.sampling_logprobs_BxN)
        eos = to_host(state.eos_B)
        out = SampleBatch([], [], [], [], [], [], [], [])
        for r in range(rows):
            if row_prompt[r] >= n_prompts:
                continue
            ids = tokens[r, :lengths[r]].tolist()
            reason = STOP_EOS if eos[r] else STOP_LENGTH
            text_ids = ids[:-1] if eos[r] else ids
            offsets = token_char_offsets(self.tokenizer, text_ids) if detokenize else []
            text = self.tokenizer.decode(text_ids) if detokenize else ""
            if config.stop_strings:
                cut = min((i for i in (text.find(s) for s in config.stop_strings) if i >= 0),
                          default=-1)
                if cut >= 0:
                    reason = STOP_STRING
                    keep = sum(1 for start, _ in offsets if start < cut)
                    ids, text_ids, text = ids[:keep], text_ids[:keep], text[:cut]
                    offsets = [(s, min(e, cut)) for s, e in offsets[:keep]]
            if eos[r] and reason == STOP_EOS and detokenize:
                offsets = offsets + [(len(text), len(text))]  # the EOS token spans no text
            out.prompt_index.append(int(row_prompt[r]))
            out.sample_index.append(int(row_sample[r]))
            out.token_ids.append(ids)
            out.texts.append(text)
            out.logprobs.append(lps[r, :len(ids)].copy())
            out.sampling_logprobs.append(slps[r, :len(ids)].copy())
            out.stop_reasons.append(reason)
            out.offsets.append(offsets)
        return out


def token_char_offsets(tokenizer, ids: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) character span of each token in `tokenizer.decode(ids)`.

    A token's end is the length of the decoded prefix through it, so spans tile the text and
    tokens that only complete a multi-byte character get the whole character. Computed from
    cumulative decodes of growing prefixes (exact for any tokenizer).
    """
    if not ids:
        return []
    prefixes = tokenizer.batch_decode([list(ids[:i + 1]) for i in range(len(ids))])
    ends = [len(t) for t in prefixes]
    # Guard against decoders whose prefix text is not a prefix of the full text (e.g. an
    # incomplete UTF-8 sequence decoded as U+FFFD): make the ends monotone.
    for i in range(len(ends) - 2, -1, -1):
        ends[i] = min(ends[i], ends[i + 1])
    starts = [0] + ends[:-1]
    return list(zip(starts, ends))
