"""Automatic line labels from rollouts: binary search (PSGPO) and per-line Monte Carlo.

A prefix of m step lines is *good* if any of K completions sampled from it passes the tests.
Assuming good prefixes are closed under shortening (a prefix of a recoverable prefix is
recoverable), a failing response has a first unrecoverable line f: lines before it are +1, lines
from it on −1, comment lines 0; a passing response is all +1 with no rollouts.

* binary search: probe m = 0 (is the problem solvable from the prompt? kept for "revised only"
  selection), then bisect (lo good, hi = T bad) — at most ⌈log2 T⌉ + 1 probes, so at most
  K·(⌈log2(T+1)⌉ + 1) completions.
* per-line Monte Carlo (Math-Shepherd): probe every m = 0..T−1; label line i by prefix i.

Completions are sampled and executed in waves of `wave` per probe, and a probe stops at its first
passing completion (early exit). All probes of a batch of responses advance in lock step, so
each round is one large sampler call and one parallel sandbox run. Finished batches are appended
to the labels file; re-running skips them (resume), and seeds depend only on (seed, batch,
round, wave), so an interrupted run ends with the same file as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Iterable, Protocol, Sequence

from prm_jax import lines as lines_lib
from prm_jax.data.problem import Problem
from prm_jax.jsonio import read_jsonl, write_jsonl_atomic
from prm_jax.prm.rows import LabelRow, line_labels

METHODS = ("binary_search", "monte_carlo")


class RolloutPolicy(Protocol):
    def complete(self, requests: Sequence[tuple[Problem, str]], n: int, seed: int) -> list[list[str]]:
        """n continuation texts for each (problem, response prefix)."""


class Verifier(Protocol):
    def verify(self, items: Sequence[tuple[Problem, str]]) -> list[bool | None]:
        """For each (problem, response): passed, failed, or None (infrastructure error)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelConfig:
    method: str = "binary_search"
    # Completions per probed prefix.
    k: int = 4
    # Completions sampled and executed at a time per probe (early exit between waves).
    wave: int = 2
    seed: int = 0
    # Responses labelled in lock step (and written together).
    batch_size: int = 32

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}, expected one of {METHODS}")
        if self.k < 1 or self.wave < 1 or self.batch_size < 1:
            raise ValueError("k, wave and batch_size must be positive")


@dataclasses.dataclass(frozen=True)
class Response:
    """A sampled response to label (`passed` None = not yet executed)."""

    problem: Problem
    response: str
    response_id: str = ""
    passed: bool | None = None

    @property
    def key(self) -> str:
        if self.response_id:
            return f"{self.problem.task_id}::{self.response_id}"
        digest = hashlib.sha1(self.response.encode()).hexdigest()[:16]
        return f"{self.problem.task_id}::{digest}"


class _Search:
    """Per-response state of one labelling run."""

    def __init__(self, item: Response, method: str):
        self.item = item
        self.method = method
        self.lines = lines_lib.split_lines(item.response)
        self.T = len(self.lines)
        self.good: dict[int, bool] = {}
        self.infra = 0
        self.rollouts = 0
        self.executions = 0
        self.lo, self.hi = 0, self.T

    def pending(self) -> list[int]:
        """Prefixes to probe next (empty when done)."""
        if self.item.passed or self.T == 0:
            return []
        if self.method == "monte_carlo":
            return [m for m in range(self.T) if m not in self.good]
        if 0 not in self.good:
            return [0]
        if not self.good[0]:
            return []
        if self.hi - self.lo > 1:
            return [(self.lo + self.hi) // 2]
        return []

    def record(self, m: int, good: bool):
        self.good[m] = good
        if self.method == "binary_search" and m > 0:
            if good:
                self.lo = m
            else:
                self.hi = m

    def first_error(self) -> int | None:
        """Index of the first unrecoverable step line (None for a passing response)."""
        if self.item.passed:
            return None
        if self.method == "binary_search":
            return self.lo if self.good.get(0) else 0
        for i in range(self.T):  # Monte Carlo: the first line whose own prefix is bad
            if not self.prefix_good(i + 1):
                return i
        return self.T - 1

    def prefix_good(self, m: int) -> bool:
        """Verdict for the prefix through m lines; the whole failing response is bad."""
        return m < self.T and self.good.get(m, False)

    def row(self) -> dict:
        first = self.first_error()
        labels = line_labels(self.lines, first)
        if self.method == "monte_carlo" and not self.item.passed:
            # Each line labelled by its own prefix's verdict (no monotonicity assumed).
            for line, entry in zip(self.lines, labels):
                if not line.is_comment:
                    good = self.prefix_good(line.step + 1)
                    entry["label"] = lines_lib.GOOD if good else lines_lib.BAD
        p = self.item.problem
        return LabelRow(
            task_id=p.task_id, response_id=self.item.key, prompt=p.prompt,
            response=self.item.response, passed=bool(self.item.passed), method=self.method,
            lines=labels, first_error_line=first,
            empty_prefix_solvable=self.good.get(0) if not self.item.passed else True,
            rollouts=self.rollouts, executions=self.executions, infrastructure_errors=self.infra,
            masked=self.infra > 0 and not self.item.passed).to_dict()


def _seed(*parts) -> int:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def label_batch(items: Sequence[Response], policy: RolloutPolicy, verifier: Verifier,
                config: LabelConfig, batch_index: int = 0) -> list[dict]:
    """Labels one batch of responses in lock step; returns one row per response."""
    # Execute responses whose outcome is unknown.
    unknown = [i for i, r in enumerate(items) if r.passed is None]
    if unknown:
        verdicts = verifier.verify([(items[i].problem, items[i].response) for i in unknown])
        items = list(items)
        for i, v in zip(unknown, verdicts):
            items[i] = dataclasses.replace(items[i], passed=bool(v))
    searches = [_Search(item, config.method) for item in items]
    round_index = 0
    while True:
        probes = [(s, m) for s in searches for m in s.pending()]
        if not probes:
            break
        open_probes = probes
        wave_index = 0
        while open_probes and wave_index * config.wave < config.k:
            n = min(config.wave, config.k - wave_index * config.wave)
            requests = [(s.item.problem, lines_lib.prefix_through(s.item.response, s.lines, m))
                        for s, m in open_probes]
            completions = policy.complete(requests, n, _seed(config.seed, batch_index, round_index,
                                                             wave_index))
            flat = [(s, m, req[1] + c) for (s, m), req, cs in zip(open_probes, requests, completions)
                    for c in cs]
            verdicts = verifier.verify([(s.item.problem, text) for s, _, text in flat])
            by_probe: dict[tuple[int, int], list] = {}
            for (s, m, _), v in zip(flat, verdicts):
                by_probe.setdefault((id(s), m), []).append(v)
                s.rollouts += 1
                s.executions += 1
                s.infra += v is None
            still_open = []
            for s, m in open_probes:
                if any(v is True for v in by_probe[(id(s), m)]):
                    s.record(m, True)
                else:
                    still_open.append((s, m))
            open_probes = still_open
            wave_index += 1
        for s, m in open_probes:
            s.record(m, False)
        round_index += 1
    return [s.row() for s in searches]


def completed_keys(path: str) -> set[str]:
    """response_ids already in a labels file (for resume); a torn last line is ignored."""
    if not os.path.exists(path):
        return set()
    keys = set()
    with open(path) as f:
        for line in f:
            try:
                keys.add(json.loads(line)["response_id"])
            except (json.JSONDecodeError, KeyError):
                continue
    return keys


def label_responses(responses: Iterable[Response], policy: RolloutPolicy, verifier: Verifier,
                    config: LabelConfig, out_path: str, progress=None) -> dict:
    """Labels all responses into `out_path` (JSONL), resuming after the batches already there.

    Returns cost and label statistics for the whole file.
    """
    responses = list(responses)
    _truncate_torn_tail(out_path)
    batches = [responses[i:i + config.batch_size] for i in range(0, len(responses), config.batch_size)]
    _drop_incomplete_batches(out_path, batches)
    done = completed_keys(out_path)
    for b, batch in enumerate(batches):
        if all(r.key in done for r in batch):
            continue
        rows = label_batch(batch, policy, verifier, config, batch_index=b)
        with open(out_path, "a") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())
        if progress is not None:
            progress(b + 1, len(batches))
    return label_statistics(read_labels(out_path))


def _drop_incomplete_batches(path: str, batches) -> None:
    """Removes the rows of a batch that a killed run wrote only in part, so that relabelling the
    batch (same seeds) leaves each response exactly once in the file."""
    if not os.path.exists(path):
        return
    rows = read_labels(path)
    present = {r["response_id"] for r in rows}
    partial = set()
    for batch in batches:
        keys = {r.key for r in batch}
        if keys & present and not keys <= present:
            partial |= keys
    if partial:
        write_jsonl_atomic(path, [r for r in rows if r["response_id"] not in partial])


def _truncate_torn_tail(path: str) -> None:
    """Drops a partially written last line left by a killed run."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def read_labels(path: str) -> list[dict]:
    return read_jsonl(path, "labels file")


def label_statistics(rows: Sequence[dict]) -> dict:
    labels = [l["label"] for r in rows for l in r["lines"]]
    failing = [r for r in rows if not r["passed"]]
    return {
        "responses": len(rows), "passed": len(rows) - len(failing),
        "lines": len(labels), "positive": labels.count(1), "negative": labels.count(-1),
        "neutral": labels.count(0), "rollouts": sum(r["rollouts"] for r in rows),
        "executions": sum(r["executions"] for r in rows),
        "masked": sum(bool(r.get("masked")) for r in rows),
        "revised_only": sum(1 for r in failing if r["empty_prefix_solvable"]),
    }


def select(rows: Sequence[dict], strategy: str = "full", *, pass_rates: dict | None = None,
           max_pass_rate: float = 1.0, min_pass_rate: float = 0.0) -> list[dict]:
    """Training rows: "full" (all unmasked), "revised_only" (failing responses whose problem is
    solvable from the empty prefix, plus passing ones), "difficulty" (problems whose pass rate
    lies in [min_pass_rate, max_pass_rate])."""
    rows = [r for r in rows if not r.get("masked")]
    if strategy == "full":
        return rows
    if strategy == "revised_only":
        return [r for r in rows if r["passed"] or r["empty_prefix_solvable"]]
    if strategy == "difficulty":
        if pass_rates is None:
            raise ValueError("strategy 'difficulty' needs pass_rates per task_id")
        return [r for r in rows if min_pass_rate <= pass_rates.get(r["task_id"], 0.0) <= max_pass_rate]
    raise ValueError(f"unknown selection strategy {strategy!r}; expected full, revised_only, difficulty")


def max_completions(T: int, k: int) -> int:
    """The binary-search bound K·(⌈log2(T+1)⌉ + 1)."""
    return k * (math.ceil(math.log2(T + 1)) + 1)
