"""Line labels from mutation/refactoring + execution (PRLCoder-style), off-policy and cheap.

From a correct response, change one line at a time and execute:
* mutation operators (`MUTATIONS`): arithmetic operator, comparison, constant ±1, an integer
  literal replaced by another in [−9, 9] (`literal`), slice/range bound off by one, another
  variable, deleted statement (→ `pass`), duplicated statement, wrong return (`return None`),
  and the statement's value expression replaced by another correct line's (`transplant`, from
  a donor pool of other programs' lines — a plausible line that does the wrong thing);
* semantics-preserving refactors (`REFACTORS`): flipped comparison (`a < b` → `b > a`),
  swapped equality operands, augmented assignment spelled out (`x += e` → `x = x + e`);
* optionally a teacher policy's rewrites of the line (any `RolloutPolicy`; `teacher_n` samples
  per line, distinct rewrites kept).

A variant that fails its tests labels the changed line −1, the lines before it +1 and the lines
after it −1 (the first error); one that still passes labels every line +1. Comment lines are 0.
Rows have the labels-file format of `prm_jax.prm.label` with method "mutation".
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import textwrap
from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib
from prm_jax.prm.label import Response, Verifier
from prm_jax.prm.rows import LabelRow, line_labels

MUTATIONS = ("binop", "compare", "constant", "literal", "bound", "variable", "delete", "duplicate",
             "return", "transplant")
# Range of integer literals drawn by the `literal` operator.
LITERAL_RANGE = (-9, 9)
REFACTORS = ("flip_compare", "swap_equality", "augassign")

_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
               ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
             ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
             ast.IsNot: ast.Is}
_CMP_FLIP = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}


def _parse_line(text: str) -> tuple[ast.stmt, bool] | None:
    """The statement on one physical line (a block header is parsed with a `pass` body)."""
    src = text.strip()
    header = src.endswith(":")
    try:
        tree = ast.parse(src + " pass" if header else src)
    except SyntaxError:
        return None
    if len(tree.body) != 1:
        return None
    return tree.body[0], header


def _unparse(stmt: ast.stmt, header: bool) -> str:
    text = ast.unparse(stmt)
    return text.split("\n", 1)[0] if header else text


def _nodes(stmt, kind):
    # For headers only the header's own expressions (not the synthetic `pass` body).
    return [n for n in ast.walk(stmt) if isinstance(n, kind)]


def _apply(op: str, stmt: ast.stmt, header: bool, rng, names: Sequence[str],
           donors: Sequence[ast.expr] = ()) -> ast.stmt | str | None:
    stmt = copy.deepcopy(stmt)
    if op == "binop":
        nodes = [n for n in _nodes(stmt, ast.BinOp) if type(n.op) in _BINOP_SWAP]
        if not nodes:
            return None
        n = nodes[rng.integers(len(nodes))]
        n.op = _BINOP_SWAP[type(n.op)]()
    elif op == "compare":
        nodes = [n for n in _nodes(stmt, ast.Compare) if type(n.ops[0]) in _CMP_SWAP]
        if not nodes:
            return None
        n = nodes[rng.integers(len(nodes))]
        n.ops[0] = _CMP_SWAP[type(n.ops[0])]()
    elif op == "constant":
        nodes = [n for n in _nodes(stmt, ast.Constant) if type(n.value) is int]
        if not nodes:
            return None
        n = nodes[rng.integers(len(nodes))]
        n.value += 1 if rng.integers(2) else -1
    elif op == "literal":
        nodes = [n for n in _nodes(stmt, ast.Constant) if type(n.value) is int]
        if not nodes:
            return None
        n = nodes[rng.integers(len(nodes))]
        lo, hi = LITERAL_RANGE
        others = [v for v in range(lo, hi + 1) if v != n.value]
        n.value = int(others[rng.integers(len(others))])
    elif op == "transplant":
        if header or not isinstance(stmt, (ast.Assign, ast.Return, ast.AugAssign)) or stmt.value is None:
            return None
        # Donors are distinct, so if the draw is this line's own value its neighbour is not.
        j = int(rng.integers(len(donors))) if donors else -1
        if j >= 0 and ast.dump(donors[j]) == ast.dump(stmt.value):
            j = (j + 1) % len(donors) if len(donors) > 1 else -1
        if j < 0:
            return None
        stmt.value = copy.deepcopy(donors[j])
    elif op == "bound":
        slices = [n for n in _nodes(stmt, ast.Slice) if n.upper is not None or n.lower is not None]
        calls = [n for n in _nodes(stmt, ast.Call) if isinstance(n.func, ast.Name)
                 and n.func.id == "range" and n.args]
        if slices:
            n = slices[rng.integers(len(slices))]
            target = "upper" if n.upper is not None else "lower"
            setattr(n, target, ast.BinOp(getattr(n, target), ast.Add(), ast.Constant(1)))
        elif calls:
            n = calls[rng.integers(len(calls))]
            n.args[-1 if len(n.args) < 3 else 1] = ast.BinOp(
                n.args[-1 if len(n.args) < 3 else 1], ast.Sub(), ast.Constant(1))
        else:
            return None
    elif op == "variable":
        loads = [n for n in _nodes(stmt, ast.Name) if isinstance(n.ctx, ast.Load)
                 and any(other != n.id for other in names)]
        if not loads:
            return None
        n = loads[rng.integers(len(loads))]
        others = [x for x in names if x != n.id]
        n.id = others[rng.integers(len(others))]
    elif op == "delete":
        return None if header else "pass"
    elif op == "duplicate":
        return None if header or isinstance(stmt, (ast.Return, ast.Break, ast.Continue)) else "duplicate"
    elif op == "return":
        if not isinstance(stmt, ast.Return) or (isinstance(stmt.value, ast.Constant) and stmt.value.value is None):
            return None
        stmt.value = ast.Constant(None)
    elif op == "flip_compare":
        nodes = [n for n in _nodes(stmt, ast.Compare) if len(n.ops) == 1 and type(n.ops[0]) in _CMP_FLIP]
        if not nodes:
            return None
        n = nodes[rng.integers(len(nodes))]
        n.left, n.comparators = n.comparators[0], [n.left]
        n.ops = [_CMP_FLIP[type(n.ops[0])]()]
    elif op == "swap_equality":
        nodes = [n for n in _nodes(stmt, ast.Compare) if len(n.ops) == 1
                 and isinstance(n.ops[0], (ast.Eq, ast.NotEq))]
        if not nodes:
            return None
        n = nodes[rng.integers(len(nodes))]
        n.left, n.comparators = n.comparators[0], [n.left]
    elif op == "augassign":
        if not isinstance(stmt, ast.AugAssign) or not isinstance(stmt.target, ast.Name):
            return None
        stmt = ast.Assign(targets=[ast.Name(stmt.target.id, ast.Store())],
                          value=ast.BinOp(ast.Name(stmt.target.id, ast.Load()), stmt.op, stmt.value),
                          lineno=1)
    else:
        raise ValueError(f"unknown operator {op!r}; expected one of {MUTATIONS + REFACTORS}")
    return ast.fix_missing_locations(stmt)


@dataclasses.dataclass(frozen=True)
class Variant:
    step: int  # the changed line's step index
    operator: str
    response: str


def donor_values(responses: Sequence[str]) -> list[ast.expr]:
    """Value expressions of the assignment/return lines of `responses` (the `transplant` pool),
    distinct, in first-seen order."""
    out, seen = [], set()
    for response in responses:
        for line in lines_lib.split_lines(response):
            parsed = None if line.is_comment else _parse_line(line.text)
            if parsed is None or parsed[1]:
                continue
            stmt = parsed[0]
            if isinstance(stmt, (ast.Assign, ast.Return, ast.AugAssign)) and stmt.value is not None:
                key = ast.dump(stmt.value)
                if key not in seen:
                    seen.add(key)
                    out.append(stmt.value)
    return out


def variants(response: str, *, operators: Sequence[str] = MUTATIONS + REFACTORS,
             per_line: int = 1, seed: int = 0, donors: Sequence[ast.expr] = ()) -> list[Variant]:
    """Up to `per_line` single-line variants per step line (deterministic by seed); `donors`
    are the `transplant` operator's value expressions (none: the operator does nothing)."""
    rng = np.random.default_rng(seed)
    lines = lines_lib.split_lines(response)
    try:
        names = sorted({n.id for n in ast.walk(ast.parse(textwrap.dedent(response)))
                        if isinstance(n, ast.Name)})
    except SyntaxError:
        names = []
    out = []
    for line in lines:
        if line.is_comment:
            continue
        parsed = _parse_line(line.text)
        if parsed is None:
            continue
        stmt, header = parsed
        indent = line.text[: len(line.text) - len(line.text.lstrip())]
        made = 0
        for op in rng.permutation(list(operators)):
            if made >= per_line:
                break
            result = _apply(str(op), stmt, header, rng, names, donors)
            if result is None:
                continue
            if result == "pass":
                new_text = indent + "pass"
            elif result == "duplicate":
                new_text = line.text + "\n" + line.text
            else:
                new_text = indent + _unparse(result, header)
            if new_text == line.text:
                continue
            out.append(Variant(line.step, str(op), response[:line.start] + new_text + response[line.end:]))
            made += 1
    return out


def teacher_variants(items: Sequence[Response], policy, *, seed: int = 0,
                     n: int = 1) -> list[tuple[int, Variant]]:
    """A teacher policy rewrites each step line `n` times: (item index, variant) for each
    distinct rewrite that differs from the line."""
    from prm_jax.prm.label import _seed

    requests, where = [], []
    for i, item in enumerate(items):
        lines = lines_lib.split_lines(item.response)
        for line in lines:
            if not line.is_comment:
                # Prefix through the previous line, before its newline (see lines.prefix_through).
                requests.append((item.problem, lines_lib.prefix_through(item.response, lines, line.step)))
                where.append((i, line))
    completions = policy.complete(requests, n, _seed(seed, "teacher"))
    out = []
    for (i, line), texts in zip(where, completions):
        seen = {line.text}
        for text in texts:
            if line.step > 0:
                if not text.startswith("\n"):
                    continue  # the teacher did not start a new line
                text = text[1:]
            first = text.split("\n", 1)[0].rstrip()
            if first.strip() and first not in seen:
                seen.add(first)
                response = items[i].response
                out.append((i, Variant(line.step, "teacher",
                                       response[:line.start] + first + response[line.end:])))
    return out


def label_by_mutation(items: Sequence[Response], verifier: Verifier, *, per_line: int = 1,
                      seed: int = 0, operators: Sequence[str] = MUTATIONS + REFACTORS,
                      teacher=None, teacher_n: int = 1) -> list[dict]:
    """Labels rows from single-line variants of correct responses (see module docstring); the
    `transplant` donors are the lines of all `items`."""
    pending: list[tuple[Response, Variant]] = []
    donors = donor_values([item.response for item in items]) if "transplant" in operators else []
    for i, item in enumerate(items):
        for v in variants(item.response, operators=operators, per_line=per_line, seed=seed + i,
                          donors=donors):
            pending.append((item, v))
    if teacher is not None:
        pending += [(items[i], v) for i, v in teacher_variants(items, teacher, seed=seed, n=teacher_n)]
    verdicts = verifier.verify([(item.problem, v.response) for item, v in pending])
    rows, ids = [], set()
    for (item, v), passed in zip(pending, verdicts):
        if passed is None:
            continue  # infrastructure error: masked, never a label
        lines = lines_lib.split_lines(v.response)
        changed = next((l.step for l in lines if l.start >= _changed_start(item.response, v.response)), 0)
        first = None if passed else changed
        response_id = f"{item.key}/{v.operator}@{v.step}"
        while response_id in ids:  # several teacher rewrites of one line
            response_id += "+"
        ids.add(response_id)
        rows.append(LabelRow(
            task_id=item.problem.task_id, response_id=response_id,
            prompt=item.problem.prompt, response=v.response, passed=bool(passed), method="mutation",
            operator=v.operator, lines=line_labels(lines, first), first_error_line=first,
            empty_prefix_solvable=True, rollouts=1 if v.operator == "teacher" else 0,
            executions=1).to_dict())
    return rows


def _changed_start(original: str, variant: str) -> int:
    """Start of the first line where the two texts differ."""
    i = 0
    for a, b in zip(original, variant):
        if a != b:
            break
        i += 1
    return original.rfind("\n", 0, i) + 1
