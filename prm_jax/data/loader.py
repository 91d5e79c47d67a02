"""grain pipelines over prepared problem sets: shuffle, repeat, shard by JAX process, batch.

    loader = problem_loader(source, batch_size=16, seed=0)
    it = iter(loader)
    batch = next(it)                 # list[Problem]
    state = it.get_state()           # bytes: checkpoint it with the model (orbax / JSON)
    it2 = iter(loader); it2.set_state(state)   # continues exactly where `it` stopped

Sharding: each JAX process reads a disjoint shard of the record indices
(`shard_index=jax.process_index()`, `shard_count=jax.process_count()` by default).
"""

from __future__ import annotations

import grain.python as grain
import jax

from prm_jax.data.tfds_builder import record_to_problem


class _ToProblem(grain.MapTransform):
    def map(self, record):
        return record_to_problem(record)


def problem_loader(source, *, batch_size: int, seed: int = 0, shuffle: bool = True,
                   num_epochs: int | None = None, shard_index: int | None = None,
                   shard_count: int | None = None, drop_remainder: bool = True,
                   worker_count: int = 0) -> grain.DataLoader:
    """A checkpointable grain DataLoader yielding lists of `batch_size` Problems.

    num_epochs=None repeats forever (a new shuffle order each epoch, deterministic by seed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} is not in [0, {shard_count})")
    if len(source) < shard_count:
        raise ValueError(f"{len(source)} records cannot be split over {shard_count} processes")
    sampler = grain.IndexSampler(
        num_records=len(source),
        shard_options=grain.ShardOptions(shard_index=shard_index, shard_count=shard_count,
                                         drop_remainder=True),
        shuffle=shuffle, num_epochs=num_epochs, seed=seed)
    return grain.DataLoader(
        data_source=source, sampler=sampler, worker_count=worker_count,
        operations=[_ToProblem(), grain.Batch(batch_size, drop_remainder=drop_remainder,
                                              batch_fn=list)])
