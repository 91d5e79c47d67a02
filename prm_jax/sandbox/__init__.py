"""Safe, fast, trustworthy execution of untrusted programs against unit tests.

    from prm_jax.sandbox import Job, SandboxPool
    with SandboxPool(workers=4) as pool:
        result = pool.run(Job(id="x", program=code, tests=("assert f(1) == 2",)))
        result.passed, result.status, result.tests

See `isolation` for the guarantees of each isolation level and `types` for result statuses.
"""

from prm_jax.sandbox.isolation import SandboxUnavailable
from prm_jax.sandbox.pool import SandboxPool, run_jobs
from prm_jax.sandbox.scoring import outputs_match
from prm_jax.sandbox.types import STATUSES, ExecutionResult, Job, Limits, TestResult

__all__ = ["STATUSES", "ExecutionResult", "Job", "Limits", "SandboxPool", "SandboxUnavailable",
           "TestResult", "outputs_match", "run_jobs"]
