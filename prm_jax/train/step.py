"""One jitted, sharded training step shared by every supervised and RL objective.

The model is split into a static graph and a `Param` state; parameters and optimizer state are
placed per `prm_jax.sharding` rules, batches split over (data, fsdp), and the step is compiled
with explicit `in_shardings`/`out_shardings` and the old state donated.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from prm_jax import sharding as sharding_lib
from prm_jax.models.sharded import ShardedModel

LossFn = Callable[[nnx.Module, dict], tuple[jax.Array, dict]]


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: nnx.State
    opt_state: Any


def train_step(state: TrainState, batch: dict, *, graphdef: nnx.GraphDef,
               tx: optax.GradientTransformation, loss_fn: LossFn):
    """One optimizer step: g = ∇_θ loss_fn(model(θ), batch), θ ← θ + tx.update(g). Returns the
    new state and the loss's metrics plus `grad_norm` = ‖g‖₂."""
    def loss_of(params):
        return loss_fn(nnx.merge(graphdef, params), batch)

    (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def abstract_train_state(build: Callable[[], nnx.Module],
                         tx: optax.GradientTransformation) -> tuple[nnx.GraphDef, TrainState]:
    """The graph of the model `build()` makes and its `TrainState` as `jax.ShapeDtypeStruct`s:
    nothing is allocated, so the step of any model size can be lowered and compiled here."""
    graphdef, params = nnx.split(nnx.eval_shape(build), nnx.Param)
    return graphdef, TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=params,
                                opt_state=jax.eval_shape(tx.init, params))


def lower_train_step(graphdef: nnx.GraphDef, state: TrainState, batch: dict, *,
                     tx: optax.GradientTransformation, loss_fn: LossFn) -> jax.stages.Lowered:
    """`train_step` jitted with the state donated (as in `ShardedTrainer`, unsharded) and lowered
    on `state` and `batch` (arrays or ShapeDtypeStructs); `.compile().memory_analysis()` gives
    the compiled program's argument, output and temporary bytes."""
    step = functools.partial(train_step, graphdef=graphdef, tx=tx, loss_fn=loss_fn)
    return jax.jit(step, donate_argnums=0).lower(state, batch)


class ShardedTrainer:
    """One model + optimizer: placed parameters and optimizer state, the compiled step, and the
    model's sharded forward (`self.sharded`, a `ShardedModel` kept in sync with the state)."""

    def __init__(self, model: nnx.Module, tx: optax.GradientTransformation, mesh: Mesh,
                 loss_fn: LossFn, rules=sharding_lib.LOGICAL_RULES):
        self.mesh, self.tx, self.loss_fn = mesh, tx, loss_fn
        self.sharded = ShardedModel(model, mesh, rules, copy=True)
        self.graphdef, params = self.sharded.graphdef, self.sharded.params
        param_shardings = self.sharded.param_shardings
        repl = sharding_lib.replicated(mesh)
        # Parameter-shaped optimizer state (moments) is sharded like the parameters; the rest
        # (step counts) is replicated.
        opt_shardings = optax.tree_map_params(
            tx, lambda _, sharding: sharding, jax.eval_shape(tx.init, params), param_shardings,
            transform_non_params=lambda _: repl)
        opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
        self.state = TrainState(step=jax.device_put(jnp.zeros((), jnp.int32), repl),
                                params=params, opt_state=opt_state)
        self.state_shardings = TrainState(step=repl, params=param_shardings, opt_state=opt_shardings)
        self._step = jax.jit(self._train_step, in_shardings=(self.state_shardings, None),
                             out_shardings=(self.state_shardings, repl), donate_argnums=0)

    def model(self, state: TrainState | None = None) -> nnx.Module:
        return nnx.merge(self.graphdef, (state or self.state).params)

    def shard_batch(self, batch: dict) -> dict:
        return self.sharded.shard_batch(batch)

    def _train_step(self, state: TrainState, batch: dict):
        return train_step(state, batch, graphdef=self.graphdef, tx=self.tx, loss_fn=self.loss_fn)

    def forward(self, tokens_BxT, mask_BxT) -> jax.Array:
        """Jitted sharded forward pass of the current parameters: float32 outputs `[B,T,...]`."""
        return self.sharded.forward(tokens_BxT, mask_BxT, params=self.state.params)

    def step(self, batch: dict) -> dict:
        """Runs one optimizer step on `batch` (host or device arrays); returns device metrics."""
        self.state, metrics = self._step(self.state, self.shard_batch(batch))
        return metrics
