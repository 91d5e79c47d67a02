"""Synthetic long-horizon suite: list pipelines whose solutions are exactly H meaningful lines.

A task describes H list transformations in its docstring; the solution applies them in order,
one per line (`xs = <step>` for the first H−1, `return <step>` for the last):

    def transform(xs):
        \"\"\"Apply these steps to the list xs, in order, and return the result.
        1. add 3 to every element
        2. keep only the even elements
        3. reverse the list
        \"\"\"
        xs = [x + 3 for x in xs]
        xs = [x for x in xs if x % 2 == 0]
        return xs[::-1]

Hidden tests are asserts on random inputs. Every step is observable: removing it changes the
output on at least one test input, so a wrong line is usually caught (measured by
`mutation_detection_rate`). Many programs are correct (`alternative_solution` writes other
forms). Everything is a function of the seed. Splits are by composition: a fixed random subset
of ordered op pairs (and of single ops, for H = 1) is held out; `train` tasks contain none of
them, `test` tasks at least one. The held-out set is a function of `split_seed` alone
(`heldout`, the one source of truth for splits), so problem sets drawn with different `seed`s
(SFT, labelling, RL) share it when they share `split_seed`.

References may carry comment lines (`comment_fraction`: the probability that a step line is
preceded by `# <its description>`); comments are not steps (neutral in PRM labels).

    python -m prm_jax.data.synthetic --out synthetic_test.jsonl --split test --num_problems 200
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

import numpy as np

from prm_jax.data.problem import Problem
from prm_jax.jsonio import write_jsonl_atomic

ENTRY_POINT = "transform"


@dataclasses.dataclass(frozen=True)
class OpKind:
    name: str
    describe: str  # with {k}
    expr: str  # canonical expression over xs, with {k}
    alternatives: tuple[str, ...]  # other correct expressions
    apply: Callable[[list, int], list]
    k_range: tuple[int, int] | None = None  # inclusive; None = no parameter


OPS: dict[str, OpKind] = {op.name: op for op in [
    OpKind("add", "add {k} to every element", "[x + {k} for x in xs]",
           ("[{k} + x for x in xs]", "list(map(lambda x: x + {k}, xs))"),
           lambda xs, k: [x + k for x in xs], (1, 9)),
    OpKind("sub", "subtract {k} from every element", "[x - {k} for x in xs]",
           ("list(map(lambda x: x - {k}, xs))",), lambda xs, k: [x - k for x in xs], (1, 9)),
    OpKind("mul", "multiply every element by {k}", "[x * {k} for x in xs]",
           ("[{k} * x for x in xs]",), lambda xs, k: [x * k for x in xs], (2, 5)),
    OpKind("neg", "negate every element", "[-x for x in xs]", ("[0 - x for x in xs]",),
           lambda xs, k: [-x for x in xs]),
    OpKind("abs", "replace every element by its absolute value", "[abs(x) for x in xs]",
           ("list(map(abs, xs))",), lambda xs, k: [abs(x) for x in xs]),
    OpKind("square", "square every element", "[x * x for x in xs]", ("[x ** 2 for x in xs]",),
           lambda xs, k: [x * x for x in xs]),
    OpKind("mod", "replace every element by its remainder modulo {k}", "[x % {k} for x in xs]",
           ("list(map(lambda x: x % {k}, xs))",), lambda xs, k: [x % k for x in xs], (2, 7)),
    OpKind("keep_even", "keep only the even elements", "[x for x in xs if x % 2 == 0]",
           ("list(filter(lambda x: x % 2 == 0, xs))",), lambda xs, k: [x for x in xs if x % 2 == 0]),
    OpKind("keep_odd", "keep only the odd elements", "[x for x in xs if x % 2 != 0]",
           ("[x for x in xs if x % 2 == 1]",), lambda xs, k: [x for x in xs if x % 2 != 0]),
    OpKind("keep_gt", "keep only the elements greater than {k}", "[x for x in xs if x > {k}]",
           ("[x for x in xs if {k} < x]",), lambda xs, k: [x for x in xs if x > k], (-5, 5)),
    OpKind("keep_lt", "keep only the elements less than {k}", "[x for x in xs if x < {k}]",
           ("[x for x in xs if not x >= {k}]",), lambda xs, k: [x for x in xs if x < k], (-5, 5)),
    OpKind("drop_mult", "remove the elements divisible by {k}", "[x for x in xs if x % {k} != 0]",
           ("[x for x in xs if x % {k}]",), lambda xs, k: [x for x in xs if x % k != 0], (3, 5)),
    OpKind("reverse", "reverse the list", "xs[::-1]", ("list(reversed(xs))",),
           lambda xs, k: xs[::-1]),
    OpKind("sort", "sort the list in ascending order", "sorted(xs)", ("sorted(xs, reverse=False)",),
           lambda xs, k: sorted(xs)),
    OpKind("sort_desc", "sort the list in descending order", "sorted(xs, reverse=True)",
           ("sorted(xs)[::-1]",), lambda xs, k: sorted(xs, reverse=True)),
    OpKind("take", "keep only the first {k} elements", "xs[:{k}]", ("xs[0:{k}]",),
           lambda xs, k: xs[:k], (2, 6)),
    OpKind("drop", "remove the first {k} elements", "xs[{k}:]", ("xs[{k}:len(xs)]",),
           lambda xs, k: xs[k:], (1, 3)),
    OpKind("dedup", "remove repeated elements, keeping the first occurrence of each",
           "list(dict.fromkeys(xs))", ("[x for i, x in enumerate(xs) if x not in xs[:i]]",),
           lambda xs, k: list(dict.fromkeys(xs))),
    OpKind("diffs", "replace the list by the differences between consecutive elements",
           "[b - a for a, b in zip(xs, xs[1:])]", ("[xs[i + 1] - xs[i] for i in range(len(xs) - 1)]",),
           lambda xs, k: [b - a for a, b in zip(xs, xs[1:])]),
]}
KINDS = tuple(sorted(OPS))
# Pairs that are redundant or cancel out: never generated back to back.
_REDUNDANT = {("reverse", "reverse"), ("sort", "sort"), ("sort_desc", "sort_desc"),
              ("sort", "sort_desc"), ("sort_desc", "sort"), ("dedup", "dedup"), ("abs", "abs"),
              ("neg", "neg"), ("keep_even", "keep_even"), ("keep_odd", "keep_odd"),
              ("keep_even", "keep_odd"), ("keep_odd", "keep_even"), ("abs", "square"),
              ("square", "abs"), ("neg", "square"), ("sort", "reverse"), ("sort_desc", "reverse")}


@dataclasses.dataclass(frozen=True)
class Step:
    kind: str
    k: int = 0

    def describe(self) -> str:
        return OPS[self.kind].describe.format(k=self.k)

    def expr(self, alternative: int = -1) -> str:
        op = OPS[self.kind]
        template = op.expr if alternative < 0 else op.alternatives[alternative % len(op.alternatives)]
        return template.format(k=self.k)

    def apply(self, xs: list) -> list:
        return OPS[self.kind].apply(xs, self.k)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    seed: int = 0
    num_problems: int = 200
    min_horizon: int = 1
    max_horizon: int = 8
    # "train" or "test": disjoint by held-out compositions.
    split: str = "train"
    num_tests: int = 6
    # Fraction of ordered op pairs (and single ops) held out for the test split.
    heldout_fraction: float = 0.2
    # Seed of the held-out compositions (None = `seed`); see `heldout`.
    split_seed: int | None = None
    # Probability that a reference step line is preceded by a comment line describing it.
    comment_fraction: float = 0.0

    def __post_init__(self):
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        if not 1 <= self.min_horizon <= self.max_horizon <= 16:
            raise ValueError(f"need 1 <= min_horizon <= max_horizon <= 16, got "
                             f"{self.min_horizon}..{self.max_horizon}")
        if self.num_problems < 1 or self.num_tests < 1:
            raise ValueError("num_problems and num_tests must be positive")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if not 0 <= self.comment_fraction <= 1:
            raise ValueError(f"comment_fraction must be in [0, 1], got {self.comment_fraction}")

    @property
    def held(self) -> tuple[frozenset, frozenset]:
        """The held-out compositions of this config (see `heldout`)."""
        seed = self.seed if self.split_seed is None else self.split_seed
        return heldout(seed, self.heldout_fraction)


def heldout(seed: int, fraction: float) -> tuple[frozenset, frozenset]:
    """(held-out ordered pairs, held-out single ops) — a function of (seed, fraction) only.

    The one source of truth for splits: every problem set of a run passes the run's data seed
    here (`SyntheticConfig.split_seed`), so no training set contains a held-out composition."""
    rng = np.random.default_rng([seed, 7919])
    pairs = [(a, b) for a in KINDS for b in KINDS if (a, b) not in _REDUNDANT]
    chosen = rng.permutation(len(pairs))[: int(round(fraction * len(pairs)))]
    singles = rng.permutation(len(KINDS))[: max(1, int(round(fraction * len(KINDS))))]
    return frozenset(pairs[i] for i in chosen), frozenset(KINDS[i] for i in singles)


def run_steps(steps, xs):
    for step in steps:
        xs = step.apply(list(xs))
    return xs


def solution(steps, alternative: int = -1, comments: tuple[bool, ...] = ()) -> str:
    """The H-line body (4-space indented, trailing newline); `comments[i]` puts a comment line
    describing step i before its line."""
    lines = []
    for i, s in enumerate(steps):
        if i < len(comments) and comments[i]:
            lines.append(f"    # {s.describe()}")
        lines.append(f"    xs = {s.expr(alternative)}" if i < len(steps) - 1
                     else f"    return {s.expr(alternative)}")
    return "\n".join(lines) + "\n"


def contains_heldout(steps, held) -> bool:
    """Whether a composition contains a held-out pair (or is a held-out single op, for H = 1)."""
    held_pairs, held_singles = held
    if len(steps) == 1:
        return steps[0].kind in held_singles
    return any((a.kind, b.kind) in held_pairs for a, b in zip(steps, steps[1:]))


def prompt(steps) -> str:
    body = "\n".join(f"    {i}. {s.describe()}" for i, s in enumerate(steps, 1))
    return (f"def {ENTRY_POINT}(xs):\n    \"\"\"Apply these steps to the list xs, in order, and "
            f"return the result.\n{body}\n    \"\"\"\n")


def _random_step(rng, previous: str | None) -> Step:
    while True:
        kind = KINDS[rng.integers(len(KINDS))]
        if previous is None or (previous, kind) not in _REDUNDANT:
            op = OPS[kind]
            k = int(rng.integers(op.k_range[0], op.k_range[1] + 1)) if op.k_range else 0
            return Step(kind, k)


def _inputs(rng, n):
    return [rng.integers(-9, 10, int(rng.integers(6, 13))).tolist() for _ in range(n)]


def _observable(steps, inputs) -> bool:
    """Every step matters and most outputs are non-empty."""
    outputs = [run_steps(steps, xs) for xs in inputs]
    if sum(bool(o) for o in outputs) < max(1, len(inputs) // 2):
        return False
    for i in range(len(steps)):
        without = steps[:i] + steps[i + 1:]
        if all(run_steps(without, xs) == out for xs, out in zip(inputs, outputs)):
            return False
    return True


def _in_split(steps, split, held) -> bool:
    has = contains_heldout(steps, held)
    return has if split == "test" else not has


def make_task(config: SyntheticConfig, index: int, held=None) -> Problem:
    held = held or config.held
    rng = np.random.default_rng([config.seed, 0 if config.split == "train" else 1, index])
    horizon = int(rng.integers(config.min_horizon, config.max_horizon + 1))
    for _ in range(10_000):
        steps: list[Step] = []
        for _ in range(horizon):
            steps.append(_random_step(rng, steps[-1].kind if steps else None))
        if not _in_split(steps, config.split, held):
            continue
        inputs = _inputs(rng, config.num_tests)
        if _observable(steps, inputs):
            break
    else:
        raise RuntimeError(f"could not generate an observable task of horizon {horizon}")
    tests = tuple(f"assert {ENTRY_POINT}({xs!r}) == {run_steps(steps, xs)!r}" for xs in inputs)
    comment_rng = np.random.default_rng([config.seed, 0 if config.split == "train" else 1, index, 31])
    comments = tuple(bool(c) for c in comment_rng.random(horizon) < config.comment_fraction)
    return Problem(
        task_id=f"synthetic/{config.split}/{config.seed}/{index}", prompt=prompt(steps),
        entry_point=ENTRY_POINT, test_kind="assert", tests=tests,
        reference=solution(steps, comments=comments),
        assembly="append", source="synthetic",
        meta={"horizon": horizon, "steps": [[s.kind, s.k] for s in steps], "split": config.split,
              "inputs": inputs})


def generate(config: SyntheticConfig) -> list[Problem]:
    held = config.held
    return [make_task(config, i, held) for i in range(config.num_problems)]


def steps_of(problem: Problem) -> list[Step]:
    return [Step(kind, k) for kind, k in problem.meta["steps"]]


def alternative_solution(problem: Problem, variant: int = 0) -> str:
    """A different, equally correct H-line body."""
    return solution(steps_of(problem), alternative=variant)


def mutation_detection_rate(problems, seed: int = 0) -> dict:
    """For every line of every reference, replace its step by a different random step and check
    whether the hidden tests catch it. Returns overall and per-horizon detection rates."""
    rng = np.random.default_rng([seed, 104729])
    caught, total, by_h = 0, 0, {}
    for p in problems:
        steps = steps_of(p)
        inputs = p.meta["inputs"]
        expected = [run_steps(steps, xs) for xs in inputs]
        for i in range(len(steps)):
            while True:
                wrong = _random_step(rng, None)
                if wrong != steps[i]:
                    break
            mutated = steps[:i] + [wrong] + steps[i + 1:]
            detected = any(run_steps(mutated, xs) != out for xs, out in zip(inputs, expected))
            caught += detected
            total += 1
            h = by_h.setdefault(len(steps), [0, 0])
            h[0] += detected
            h[1] += 1
    return {"rate": caught / max(total, 1), "lines": total,
            "by_horizon": {h: c / t for h, (c, t) in sorted(by_h.items())}}


def parse_spec(spec: str) -> SyntheticConfig:
    """"seed=0,num_problems=100,max_horizon=8,split=test" → SyntheticConfig."""
    fields = {f.name: f for f in dataclasses.fields(SyntheticConfig)}
    values = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise ValueError(f"synthetic spec part {part!r} is not key=value")
        key, value = part.split("=", 1)
        if key not in fields:
            raise ValueError(f"unknown synthetic spec key {key!r}; expected {sorted(fields)}")
        values[key] = value if key == "split" else (
            float(value) if key in ("heldout_fraction", "comment_fraction") else int(value))
    return SyntheticConfig(**values)


def main():
    parser = argparse.ArgumentParser(description="Write a synthetic long-horizon problem set.")
    parser.add_argument("--out", required=True)
    for f in dataclasses.fields(SyntheticConfig):
        kind = int if f.name == "split_seed" else type(f.default)
        parser.add_argument(f"--{f.name}", type=kind, default=f.default)
    args = vars(parser.parse_args())
    out = args.pop("out")
    config = SyntheticConfig(**args)
    problems = generate(config)
    write_jsonl_atomic(out, [p.to_dict() for p in problems])
    rate = mutation_detection_rate(problems)
    print(f"wrote {len(problems)} problems to {out}; one-wrong-line detection rate "
          f"{rate['rate']:.3f} over {rate['lines']} lines")


if __name__ == "__main__":
    main()
