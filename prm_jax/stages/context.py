"""What every stage receives: the validated config, the workdir's named paths, the tokenizer
and the device mesh — built once per run by `prm_jax.run`."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from prm_jax.run_config import RunConfig
from prm_jax.workdir import Workdir


@dataclasses.dataclass(frozen=True)
class StageContext:
    config: RunConfig
    workdir: Workdir
    tokenizer: Any
    mesh: jax.sharding.Mesh
