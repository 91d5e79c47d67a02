"""Key/value cache for incremental decoding.

Layout: one `[B, S, K, H]` key and value array per layer (B batch, S cache slots, K kv heads,
H head dim). All sequences of a batch write to the same slots (`length` is one scalar), and
`valid_BxS` marks which slots hold real tokens, so a left-padded batch of prompts of different
lengths shares one cache: pad slots are never attended to. A token's RoPE position is the number
of valid slots before it in its own sequence, not its slot index.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from prm_jax.models.config import DecoderConfig


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
        shape = (batch, max_len, config.num_kv_heads, config.dim_per_head)
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
