"""Problems with unit tests: the schema, sources, the synthetic suite, TFDS builders, grain loaders."""

from prm_jax.data.problem import Problem, ProblemError
from prm_jax.data.sources import DATASETS, LoadReport, load

__all__ = ["DATASETS", "LoadReport", "Problem", "ProblemError", "load"]
