"""Device mesh and the logical-axis → mesh-axis rules: the one place that decides placement.

Mesh axes: `data` (pure data parallelism), `fsdp` (data parallelism with parameters sharded
along `embed`), `tensor` (Megatron-style: heads, MLP width and vocabulary split). Batches are
split over (`data`, `fsdp`). Parameters carry `logical_axes` metadata (see
`prm_jax.models.transformer`); `LOGICAL_RULES` maps each logical name to a mesh axis or None.
A mapping that does not divide a parameter's dimension is an error naming the parameter, except
for attention heads (`REPLICATED_IF_INDIVISIBLE`): when `tensor` exceeds (or does not divide)
the number of KV heads, the key/value projections are replicated over `tensor` — every tensor
shard computes the few KV heads its query heads need, as MaxText and vLLM replicate KV heads —
and query heads that do not divide `tensor` (14 heads of Qwen2.5-0.5B over 8) are replicated the
same way, so the attention is computed redundantly on every `tensor` shard while the MLP and
the vocabulary stay split. Qwen2.5-0.5B (2 KV heads) can so use tensor=8.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical parameter axis -> mesh axis (None = replicated).
LOGICAL_RULES: dict[str, str | None] = {
    "vocab": "tensor",
    "embed": "fsdp",
    "mlp": "tensor",
    "heads": "tensor",
    "kv_heads": "tensor",
    "head_dim": None,
    "norm": None,
    "score": None,
}


# Logical axes whose parameters fall back to replication over a mesh axis that does not divide them.
REPLICATED_IF_INDIVISIBLE = frozenset({"heads", "kv_heads"})


class ShardingError(ValueError):
    """A mesh shape or sharding rule does not fit the devices or the model."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeshConfig:
    """Mesh axis sizes; exactly one may be -1 (all remaining devices)."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1

    def resolve(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        for name, size in zip(MESH_AXES, sizes):
            if not isinstance(size, int) or (size < 1 and size != -1):
                raise ShardingError(f"mesh axis {name}={size!r}: expected a positive int or -1")
        if sizes.count(-1) > 1:
            raise ShardingError(f"mesh {dict(zip(MESH_AXES, sizes))}: at most one axis may be -1")
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ShardingError(
                    f"mesh {dict(zip(MESH_AXES, sizes))}: {num_devices} devices are not divisible "
                    f"by the fixed axes' product {known}")
            sizes[sizes.index(-1)] = num_devices // known
        elif known != num_devices:
            raise ShardingError(
                f"mesh {dict(zip(MESH_AXES, sizes))} needs {known} devices, but {num_devices} are "
                "available")
        return tuple(sizes)


def make_mesh(config: MeshConfig | Mapping[str, int] | None = None,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh with automatic (propagated) sharding on every axis."""
    if config is None:
        config = MeshConfig()
    elif isinstance(config, Mapping):
        unknown = set(config) - set(MESH_AXES)
        if unknown:
            raise ShardingError(f"unknown mesh axes {sorted(unknown)}; expected {MESH_AXES}")
        config = MeshConfig(**config)
    devices = list(devices) if devices is not None else jax.devices()
    shape = config.resolve(len(devices))
    device_array = np.asarray(devices).reshape(shape)
    return Mesh(device_array, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def logical_to_spec(logical_axes: Sequence[str | None], rules: Mapping[str, str | None] = LOGICAL_RULES) -> P:
    """PartitionSpec for a parameter; a mesh axis already used by an earlier dim is not reused."""
    used: set[str] = set()
    spec = []
    for name in logical_axes:
        if name is not None and name not in rules:
            raise ShardingError(f"logical axis {name!r} has no sharding rule; rules: {sorted(rules)}")
        axis = rules.get(name) if name is not None else None
        if axis is not None and axis in used:
            axis = None
        if axis is not None:
            used.add(axis)
        spec.append(axis)
    return P(*spec)


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def param_sharding(path: str, shape, logical_axes, mesh: Mesh, rules=LOGICAL_RULES) -> NamedSharding:
    """NamedSharding of one parameter per the rules; attention heads that do not divide their
    mesh axis are replicated over it, any other indivisible dimension is an error."""
    spec = list(logical_to_spec(logical_axes, rules))
    for dim, (size, axis) in enumerate(zip(shape, spec)):
        if axis is not None and size % mesh.shape[axis]:
            if logical_axes[dim] in REPLICATED_IF_INDIVISIBLE:
                spec[dim] = None
                continue
            raise ShardingError(
                f"parameter {path} dim {dim} ({logical_axes[dim]}={size}) is not divisible by mesh "
                f"axis {axis}={mesh.shape[axis]}; change the mesh or the rule for {logical_axes[dim]!r}")
    return NamedSharding(mesh, P(*spec))


def state_shardings(state: nnx.State, mesh: Mesh, rules=LOGICAL_RULES) -> nnx.State:
    """The same tree as `state`, with each variable's value replaced by its NamedSharding.

    Variables without `logical_axes` (e.g. RNG counters) are replicated.
    """
    def one(path, var):
        axes = var.get_metadata().get("logical_axes")
        if axes is None:
            return var.replace(NamedSharding(mesh, P()))
        return var.replace(param_sharding(_path_str(path), var.shape, axes, mesh, rules))
    return jax.tree_util.tree_map_with_path(one, state, is_leaf=_is_variable)


def shard_model(model: nnx.Module, mesh: Mesh, rules=LOGICAL_RULES) -> nnx.Module:
    """Places every parameter of `model` on `mesh` per the rules, in place; returns `model`."""
    state = nnx.state(model)
    shardings = state_shardings(state, mesh, rules)
    nnx.update(model, jax.device_put(state, shardings))
    return model


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Leading dim split over (data, fsdp), the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
    n = mesh.shape["data"] * mesh.shape["fsdp"]
    if batch_size % n:
        raise ShardingError(
            f"batch size {batch_size} is not divisible by data×fsdp = {n} of mesh {dict(mesh.shape)}")


def sharding_summary(model: nnx.Module, mesh: Mesh, rules=LOGICAL_RULES) -> str:
    """One line per distinct (logical axes → spec) class of parameters, with counts and bytes."""
    groups: dict[tuple, list[int]] = {}
    for path, var in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param), is_leaf=_is_variable):
        axes = tuple(var.get_metadata().get("logical_axes") or ())
        spec = param_sharding(_path_str(path), var.shape, axes, mesh, rules).spec
        size = int(np.prod(var.shape))
        g = groups.setdefault((axes, tuple(spec)), [0, 0])
        g[0] += 1
        g[1] += size
    lines = [f"mesh {dict(mesh.shape)} on {mesh.devices.size} {mesh.devices.flat[0].platform} device(s)"]
    for (axes, spec), (count, size) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        per_device = size // max(1, math.prod(mesh.shape[a] for a in spec if a is not None))
        lines.append(f"  {str(axes):36s} -> {str(P(*spec)):28s} {count:4d} tensors "
                     f"{size:>12,d} params ({per_device:,d} per device)")
    return "\n".join(lines)
