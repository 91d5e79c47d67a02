"""A model split into graph + placed parameters with a jitted, sharded forward pass.

The one way parameters are placed on a mesh (by `prm_jax.sharding` rules) and run: the trainer,
the sampler and PRM/critic scoring all hold a `ShardedModel`. The forward's output sharding
follows the output's rank (`[B,T,V]` logits or `[B,T]` values), batch split over (data, fsdp).
`update_params` swaps in new weights with the same shardings, so nothing recompiles.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prm_jax import distributed, sharding as sharding_lib


class ShardedModel:
    def __init__(self, model: nnx.Module, mesh: jax.sharding.Mesh | None = None,
                 rules=sharding_lib.LOGICAL_RULES, *, copy: bool = False):
        """copy=True gives the parameters buffers of their own. Trainers need it: they donate
        their state, and a model cloned from another (a critic from the PRM) shares its arrays."""
        self.mesh, self.config = mesh, model.config
        # A scalar head outputs [B,T] values, an LM head [B,T,V] logits.
        self.is_scalar_head = hasattr(model, "score_w")
        # A PRM with a likelihood term needs each row's response start (`ScalarHeadModel`).
        self.needs_response_start = bool(getattr(model, "likelihood_clip", 0.0))
        self.graphdef, params = nnx.split(model, nnx.Param)
        if mesh is not None:
            self.param_shardings = sharding_lib.state_shardings(params, mesh, rules)
            params = jax.device_put(params, self.param_shardings)
        else:
            self.param_shardings = None
        if copy:
            params = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree),
                             out_shardings=self.param_shardings)(params)
        self.params = params
        self._forwards: dict[int, callable] = {}

    def model(self, params: nnx.State | None = None) -> nnx.Module:
        return nnx.merge(self.graphdef, self.params if params is None else params)

    def update_params(self, params: nnx.State) -> None:
        """New weights of the same structure; placed like the old ones (no recompilation)."""
        if self.param_shardings is not None:
            params = jax.device_put(params, self.param_shardings)
        self.params = params

    def shard_batch(self, batch: dict) -> dict:
        """Host or device arrays → device arrays with the leading dim split over (data, fsdp)."""
        if self.mesh is None:
            return {k: jnp.asarray(v) for k, v in batch.items()}
        out = {}
        for name, value in batch.items():
            sharding_lib.check_batch_divisible(value.shape[0], self.mesh)
            out[name] = jax.device_put(value, sharding_lib.batch_sharding(self.mesh, value.ndim))
        return out

    def _compiled_forward(self, out_ndim: int):
        if out_ndim not in self._forwards:
            def forward(params, tokens, mask, starts):
                model = nnx.merge(self.graphdef, params)
                if self.is_scalar_head:  # a scalar head reads the starts only with a likelihood term
                    return model(tokens, mask_BxT=mask, response_start_B=starts)[0]
                return model(tokens, mask_BxT=mask)[0]

            if self.mesh is None:
                self._forwards[out_ndim] = jax.jit(forward)
            else:
                batch = sharding_lib.batch_sharding(self.mesh)
                self._forwards[out_ndim] = jax.jit(
                    forward, in_shardings=(self.param_shardings, batch, batch,
                                           sharding_lib.batch_sharding(self.mesh, 1)),
                    out_shardings=sharding_lib.batch_sharding(self.mesh, out_ndim))
        return self._forwards[out_ndim]

    def forward(self, tokens_BxT, mask_BxT, params: nnx.State | None = None,
                response_start_B=None) -> jax.Array:
        """float32 outputs `[B,T,...]` (logits, or one value per token for a scalar head).
        `response_start_B`: each row's first response position — required by a PRM with a
        likelihood term, ignored otherwise."""
        if self.needs_response_start and response_start_B is None:
            raise ValueError("this PRM has a likelihood term: forward needs response_start_B")
        tokens = np.asarray(tokens_BxT)
        starts = np.zeros(tokens.shape[0], np.int32) if response_start_B is None else \
            np.asarray(response_start_B, np.int32)
        batch = self.shard_batch({"tokens": tokens, "mask": np.asarray(mask_BxT), "starts": starts})
        forward = self._compiled_forward(2 if self.is_scalar_head else 3)
        return forward(self.params if params is None else params, batch["tokens"], batch["mask"],
                       batch["starts"])

    def values_at(self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *,
                  batch_size: int = 16, bucket: int = 64,
                  response_starts: Sequence[int] | None = None) -> list[list[float]]:
        """A scalar-head model's outputs at the given positions of each token-id sequence
        (`response_starts`: each sequence's first response position, see `forward`).

        Sequences are right-padded to a multiple of `bucket` and run `batch_size` at a time (the
        last batch padded with dummy rows), so few shapes compile.
        """
        if len(token_ids) != len(positions):
            raise ValueError(f"{len(token_ids)} sequences for {len(positions)} position lists")
        if self.mesh is not None:
            n = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
            batch_size = -(-batch_size // n) * n
        out: list[list[float]] = []
        for start in range(0, len(token_ids), batch_size):
            chunk = list(zip(token_ids[start:start + batch_size], positions[start:start + batch_size]))
            width = -(-max(len(ids) for ids, _ in chunk) // bucket) * bucket
            tokens = np.zeros((batch_size, width), np.int32)
            mask = np.zeros((batch_size, width), bool)
            for i, (ids, _) in enumerate(chunk):
                tokens[i, :len(ids)] = ids
                mask[i, :len(ids)] = True
            mask[len(chunk):, 0] = True
            starts = None
            if response_starts is not None:
                starts = np.zeros(batch_size, np.int32)
                starts[:len(chunk)] = response_starts[start:start + batch_size]
            values = distributed.to_host(self.forward(tokens, mask, response_start_B=starts))
            out.extend([float(values[i, t]) for t in pos] for i, (_, pos) in enumerate(chunk))
        return out
