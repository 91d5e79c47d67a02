"""Adapters that connect labelling to the real sampler and sandbox."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from prm_jax.data.problem import Problem
from prm_jax.sampling import Sampler, SamplingConfig


class SamplerPolicy:
    """Continuations of (problem, prefix) from a policy model through the Sampler."""

    def __init__(self, sampler: Sampler, config: SamplingConfig):
        self.sampler, self.config = sampler, config

    def complete(self, requests: Sequence[tuple[Problem, str]], n: int, seed: int) -> list[list[str]]:
        if not requests:
            return []
        out = self.sampler.generate([p.prompt for p, _ in requests],
                                    dataclasses.replace(self.config, n=n), seed=seed,
                                    prefixes=[prefix for _, prefix in requests])
        return out.texts_by_prompt(len(requests))


class SandboxVerifier:
    """Runs (problem, response) pairs; infrastructure errors come back as None (masked)."""

    def __init__(self, pool, timeout_s: float | None = None):
        self.pool, self.timeout_s = pool, timeout_s

    def verify(self, items: Sequence[tuple[Problem, str]]) -> list[bool | None]:
        if not items:
            return []
        jobs = [p.job(text, job_id=f"{p.task_id}#{i}", timeout_s=self.timeout_s)
                for i, (p, text) in enumerate(items)]
        return [r.passed if r.scorable else None for r in self.pool.run_many(jobs)]
