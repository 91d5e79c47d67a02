"""Several JAX processes (hosts) as one run: start-up, per-process batches, reading results.

Every process runs the same program. `initialize` joins them (on a TPU pod slice, SLURM, Open
MPI or Kubernetes JAX finds everything by itself; elsewhere set `JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`). `jax.devices()` then lists every device of every
process, so `prm_jax.sharding.make_mesh` builds one global mesh.

Batches: each process loads only its own rows (the data loaders shard by
`jax.process_index()`); `global_batch` joins them into arrays split over (data, fsdp).
`local_rows` says which rows of a global batch a process holds. Arrays whose shards live on
other processes cannot be read with `np.asarray`; `to_host` gathers them on every process.
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils

from prm_jax import sharding as sharding_lib

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> None:
    """`jax.distributed.initialize`, with unset arguments read from the environment.

    Arguments left None here and in the environment (`JAX_COORDINATOR_ADDRESS`,
    `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`) are auto-detected by JAX (TPU pod slices, SLURM,
    Open MPI, Kubernetes). Must run before anything touches a JAX device. A second call in the
    same process does nothing.
    """
    if jax.distributed.is_initialized():
        return
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **kwargs)


def local_rows(mesh: jax.sharding.Mesh, batch_size: int) -> slice:
    """The rows of a global `[batch_size, ...]` batch (split over data, fsdp) that this process
    feeds: one contiguous range, the same size on every process."""
    sharding_lib.check_batch_divisible(batch_size, mesh)
    index_map = sharding_lib.batch_sharding(mesh, 1).addressable_devices_indices_map((batch_size,))
    starts = sorted({idx[0].start or 0 for idx in index_map.values()})
    stops = sorted({batch_size if idx[0].stop is None else idx[0].stop
                    for idx in index_map.values()})
    rows = slice(starts[0], stops[-1])
    covered = sum(b - a for a, b in zip(starts, stops))
    if covered != rows.stop - rows.start or (rows.stop - rows.start) * jax.process_count() != batch_size:
        raise sharding_lib.ShardingError(
            f"mesh {dict(mesh.shape)}: process {jax.process_index()} does not hold one contiguous "
            f"1/{jax.process_count()} of the batch rows; order the devices so that each "
            "process's devices are adjacent along (data, fsdp)")
    return rows


def _local_batch_shards(mesh: jax.sharding.Mesh) -> int:
    """How many of the mesh's (data, fsdp) positions this process's devices occupy."""
    local = {d.id for d in jax.local_devices()}
    positions = mesh.devices.reshape(mesh.shape["data"] * mesh.shape["fsdp"], -1)
    return sum(any(d.id in local for d in row) for row in positions)


def global_batch(mesh: jax.sharding.Mesh, local_batch: Mapping[str, np.ndarray]) -> dict:
    """Process-local host arrays (this process's rows) → global arrays split over (data, fsdp).

    With one process it is the same as placing the batch. Device arrays pass through unchanged
    (they are global already).
    """
    out = {}
    shards = _local_batch_shards(mesh)
    for name, value in local_batch.items():
        if isinstance(value, jax.Array):
            out[name] = value
            continue
        value = np.asarray(value)
        if value.shape[0] % shards:
            raise sharding_lib.ShardingError(
                f"batch {name!r}: {value.shape[0]} rows on process {jax.process_index()} are not "
                f"divisible by the {shards} (data, fsdp) shards of mesh {dict(mesh.shape)} on "
                "its devices")
        out[name] = jax.make_array_from_process_local_data(
            sharding_lib.batch_sharding(mesh, value.ndim), value)
    return out


def to_host(tree):
    """Every leaf as a numpy array on every process, whether or not its shards are all local."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))
    return jax.tree.map(one, tree)
