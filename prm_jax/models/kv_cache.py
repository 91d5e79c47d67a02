"""Key/value cache for incremental decoding.

Layout: one `[B, K, S, H]` key and value array per layer (B batch, K kv heads, S cache slots,
H head dim): the layout attention's batched matmuls read directly (batch dims B, K leading,
slots next), so a decode step never copies the cache into another layout. All sequences of a
batch write to the same slots (`length` is one scalar), and `valid_BxS` marks which slots hold
real tokens, so a left-padded batch of prompts of different lengths shares one cache: pad slots
are never attended to. A token's RoPE position is the number of valid slots before it in its
own sequence, not its slot index.

`grow` appends empty slots: a decoder can start with a cache sized to what it has written and
grow it by buckets, so attention reads at most a bucket's worth of slots beyond the written ones.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from prm_jax.models.config import DecoderConfig

# Axis of the slots in a layer's key/value array.
SLOT_AXIS = 2


@flax.struct.dataclass
class KVCache:
    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    # True where a slot holds a real (non-pad) token.
    valid_BxS: jax.Array
    # Number of slots written so far (same for every sequence); the next write starts here.
    length: jax.Array

    @classmethod
    def init(cls, config: DecoderConfig, batch: int, max_len: int, dtype=None) -> "KVCache":
        """An empty cache of `max_len` slots for `batch` sequences."""
        dtype = dtype or config.compute_dtype
        shape = (batch, config.num_kv_heads, max_len, config.dim_per_head)
        return cls(
            keys=tuple(jnp.zeros(shape, dtype) for _ in range(config.num_layers)),
            values=tuple(jnp.zeros(shape, dtype) for _ in range(config.num_layers)),
            valid_BxS=jnp.zeros((batch, max_len), bool),
            length=jnp.zeros((), jnp.int32),
        )

    @property
    def max_len(self) -> int:
        return self.valid_BxS.shape[1]

    @property
    def batch(self) -> int:
        return self.valid_BxS.shape[0]

    def num_valid(self) -> jax.Array:
        """Real tokens already cached per sequence: the RoPE position of the next token. `[B]`."""
        return self.valid_BxS.sum(axis=1).astype(jnp.int32)

    def map_rows(self, fn) -> "KVCache":
        """The cache with `fn` applied to every per-row array (keys, values, valid mask), e.g.
        `lambda x: jnp.repeat(x, n, axis=0)` to give each row `n` copies."""
        return KVCache(keys=tuple(map(fn, self.keys)), values=tuple(map(fn, self.values)),
                       valid_BxS=fn(self.valid_BxS), length=self.length)

    def grow(self, max_len: int) -> "KVCache":
        """The same cache with empty slots appended up to `max_len` slots."""
        extra = max_len - self.max_len
        if extra < 0:
            raise ValueError(f"cannot shrink a cache of {self.max_len} slots to {max_len}")
        if extra == 0:
            return self
        pad_kv = lambda x: jnp.pad(x, [(0, extra) if a == SLOT_AXIS else (0, 0) for a in range(x.ndim)])
        return KVCache(keys=tuple(map(pad_kv, self.keys)), values=tuple(map(pad_kv, self.values)),
                       valid_BxS=jnp.pad(self.valid_BxS, [(0, 0), (0, extra)]), length=self.length)
