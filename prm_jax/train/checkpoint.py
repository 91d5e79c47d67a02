"""Checkpoints of named items: one orbax `CheckpointManager` step holds every item of a run.

Items are pytrees (parameters, optimizer states, RNG keys, step counters — restored with the
shardings of the abstract target given) or grain data iterators (their position), so a killed
run resumes onto the same trajectory. The RL learner saves policy, critic, both optimizer states,
RNG and the prompt iterator this way; the supervised loop its TrainState and iterator.
"""

from __future__ import annotations

import os
from typing import Any

import grain.python as grain
import jax
import orbax.checkpoint as ocp


def _is_iterator(item: Any) -> bool:
    return hasattr(item, "get_state") and hasattr(item, "set_state")


def abstract_like(tree):
    """Shape/dtype/sharding of every array of `tree`: the restore target of a placed pytree."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int = 2):
        # orbax refuses relative paths.
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, **items) -> None:
        args = {name: (grain.PyGrainCheckpointSave(item) if _is_iterator(item)
                       else ocp.args.StandardSave(item)) for name, item in items.items()}
        self._manager.save(step, args=ocp.args.Composite(**args), force=True)

    def restore(self, step: int, **targets) -> dict:
        """targets: an abstract pytree (see `abstract_like`) or a grain iterator, restored in place."""
        args = {name: (grain.PyGrainCheckpointRestore(t) if _is_iterator(t)
                       else ocp.args.StandardRestore(t)) for name, t in targets.items()}
        restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        return {name: restored[name] for name in targets}

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
