"""Stage `label`: line labels by every method, and how accurate each is.

* binary search (PSGPO) for every response;
* per-line Monte Carlo (Math-Shepherd, the baseline) on `label.mc_responses` failing responses
  drawn at random across tasks;
* mutation (PRLCoder) of correct responses, and of the references of `label.reference_tasks`
  further training tasks (the references themselves, all +1, and their AST mutations plus one
  policy rewrite per line, labelled by execution);
* with `label.ground_truth`, the synthetic suite's ground truth for every labelled response:
  label accuracy of each method (first error, lines, Cohen's κ, chance levels) and
  labels_ground_truth.jsonl (binary-search responses with true labels, the "oracle" arm).

Writes workdir/labels_{binary_search,monte_carlo,mutation,reference_mutation,ground_truth}.jsonl;
labelling resumes after the batches already written.
"""

from __future__ import annotations

import os
import time

import numpy as np

from prm_jax import lines as lines_lib
from prm_jax import plots
from prm_jax.compile_stats import CompileStats
from prm_jax.data.problem import Problem
from prm_jax.jsonio import read_jsonl, write_jsonl_atomic
from prm_jax.models.factory import load_run_model
from prm_jax.prm import ground_truth
from prm_jax.prm import label as label_lib
from prm_jax.prm import label_accuracy
from prm_jax.prm import mutate
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.prm.rows import LabelRow, line_labels
from prm_jax.stages.context import StageContext
from prm_jax.sandbox import SandboxPool
from prm_jax.stages import common
from prm_jax.workdir import Workdir

# Reference-mutation tasks are drawn with this offset to the data seed (train split).
REFERENCE_SEED_OFFSET = 2000


def _responses(wd: Workdir) -> list[label_lib.Response]:
    out = []
    for r in read_jsonl(wd.responses, "responses file"):
        if r["passed"] is None:
            continue  # infrastructure error: masked
        out.append(label_lib.Response(Problem.from_dict(r["problem"]), r["response"],
                                      r["response_id"], r["passed"]))
    return out


def mc_subset(items, n: int, seed: int):
    """`n` failing responses drawn at random across tasks (not the first n: those cluster)."""
    failing = [r for r in items if not r.passed]
    index = np.random.default_rng([seed, 4099]).permutation(len(failing))[:n]
    return [failing[i] for i in sorted(index)]


def reference_items(config) -> list[label_lib.Response]:
    problems = common.problems(config, "train", config.label.reference_tasks,
                               offset_seed=REFERENCE_SEED_OFFSET)
    return [label_lib.Response(p, p.reference, "reference", True) for p in problems]


def reference_row(item: label_lib.Response) -> dict:
    """A correct program as a label row: every step line +1 (comments 0), no rollouts."""
    p = item.problem
    return LabelRow(task_id=p.task_id, response_id=item.key, prompt=p.prompt, response=item.response,
                    passed=True, method="mutation", operator="reference",
                    lines=line_labels(lines_lib.split_lines(item.response), None),
                    first_error_line=None, empty_prefix_solvable=True, rollouts=0,
                    executions=0).to_dict()


def _mutation_file(path, items, verifier, config, teacher=None, with_originals=False,
                   teacher_n: int = 1) -> dict:
    """Mutation rows of `items` (correct programs) into `path`, with the originals' own rows
    (all +1) first when `with_originals`; an existing file is reused."""
    if not os.path.exists(path):
        rows = [reference_row(r) for r in items] if with_originals else []
        write_jsonl_atomic(path, rows + mutate.label_by_mutation(
            items, verifier, per_line=config.label.mutation_per_line, seed=config.seed,
            teacher=teacher, teacher_n=teacher_n))
    return label_lib.label_statistics(label_lib.read_labels(path))


# Tokens a teacher rewrite may take: only its first line is used (a synthetic line is < 40).
TEACHER_MAX_NEW_TOKENS = 48
# Rows every labelling rollout call is padded to at least: the calls shrink round by round as
# responses resolve, and each smaller row bucket would compile its own programs.
ROLLOUT_MIN_ROWS = 64


def run(ctx: StageContext) -> dict:
    """Labels by every method; results also say what share of the stage XLA compiles took."""
    start = time.perf_counter()
    with CompileStats() as compile_stats:
        results = _label(ctx)
    seconds = time.perf_counter() - start
    results["compile"] = dict(compile_stats.as_dict(),
                              share_of_stage=round(compile_stats.seconds / max(seconds, 1e-9), 3))
    print(f"  label stage: {compile_stats.compiles} XLA compiles, {compile_stats.seconds:.1f} s of "
          f"{seconds:.1f} s ({results['compile']['share_of_stage']:.0%})")
    return results


def _label(ctx: StageContext) -> dict:
    config = ctx.config
    wd = ctx.workdir
    c = config.label
    policy = load_run_model(config, common.labelling_policy_path(config, wd))
    rollout = common.rollout_policy(ctx, policy, c.temperature, min_rows=ROLLOUT_MIN_ROWS)
    items = _responses(wd)
    results = {}
    with SandboxPool() as pool:
        verifier = SandboxVerifier(pool)
        for method, subset in (("binary_search", items),
                               ("monte_carlo", mc_subset(items, c.mc_responses, config.seed))):
            start = time.perf_counter()
            stats = label_lib.label_responses(
                subset, rollout, verifier,
                label_lib.LabelConfig(method=method, k=c.k, wave=c.wave, seed=config.seed,
                                      batch_size=c.batch_size), wd.labels(method),
                progress=lambda done, total, m=method: print(f"  {m}: batch {done}/{total}"))
            stats["seconds"] = time.perf_counter() - start
            results[method] = stats
        start = time.perf_counter()
        correct = [r for r in items if r.passed][: c.mutation_responses]
        results["mutation"] = _mutation_file(wd.labels("mutation"), correct, verifier, config)
        references = reference_items(config) if c.reference_tasks else []
        if references:
            results["reference_mutation"] = _mutation_file(
                wd.labels("reference_mutation"), references, verifier, config,
                teacher=common.rollout_policy(ctx, policy, c.teacher_temperature, TEACHER_MAX_NEW_TOKENS)
                if c.teacher_n else None,
                with_originals=True, teacher_n=c.teacher_n)
        results["mutation"]["seconds"] = time.perf_counter() - start
        if c.ground_truth:
            start = time.perf_counter()
            problems = {r.problem.task_id: r.problem for r in items + references}
            results["accuracy"] = accuracy(wd, verifier, problems, config.seed)
            results["accuracy"]["seconds"] = time.perf_counter() - start
            plots.label_cost_accuracy(results["accuracy"], wd.path("label_accuracy.png"))
    results["agreement"] = agreement(wd)
    bs = results["binary_search"]
    print(f"labels: {bs['lines']} lines by binary search ({bs['rollouts']} rollouts), MC agreement "
          f"{results['agreement']['line_agreement']:.3f}, MC/BS rollouts per response "
          f"{results['agreement']['rollout_ratio']:.2f}")
    for method, a in results.get("accuracy", {}).items():
        if isinstance(a, dict) and "kappa" in a:
            print(f"  {method} vs ground truth on {a['failing_responses']} failing responses: "
                  f"first error {a['first_error_accuracy']:.3f} (line-0 guess "
                  f"{a['chance']['first_line_first_error_accuracy']:.3f}), lines "
                  f"{a['line_accuracy']:.3f} (constant −1 {a['chance']['constant_bad_line_accuracy']:.3f}), "
                  f"κ {a['kappa']:.3f}")
    return results


# Rows per mutation file checked against ground truth (a random sample; ground truth runs
# (T−1)·(H+1) programs per failing row).
ACCURACY_SAMPLE = 400


def accuracy(wd: Workdir, verifier, problems: dict[str, Problem], seed: int = 0) -> dict:
    """Ground truth for the label files' rows (`problems` by task id; every binary-search and MC
    row, a random `ACCURACY_SAMPLE` of each mutation file's failing rows); label accuracy per
    method; writes labels_ground_truth.jsonl (binary-search rows with their true labels)."""
    out = {}
    truth_rows = []
    for method in ("binary_search", "monte_carlo", "mutation", "reference_mutation"):
        path = wd.labels(method)
        if not os.path.exists(path):
            continue
        rows = [r for r in label_lib.read_labels(path) if not r.get("masked")]
        rows = [r for r in rows if r["task_id"] in problems]
        if method in ("mutation", "reference_mutation"):
            rows = [r for r in rows if not r["passed"]]
            pick = np.random.default_rng([seed, 8191]).permutation(len(rows))[:ACCURACY_SAMPLE]
            rows = [rows[i] for i in sorted(pick)]
        truths = ground_truth.ground_truth(
            [(problems[r["task_id"]], r["response"], r["passed"]) for r in rows], verifier)
        out[method] = label_accuracy.label_accuracy(rows, truths)
        if method == "binary_search":
            truth_rows = [oracle_row(r, t) for r, t in zip(rows, truths) if not t.masked]
    write_jsonl_atomic(wd.labels("ground_truth"), truth_rows)
    return out


def oracle_row(row: dict, truth: ground_truth.Truth) -> dict:
    lines = [dict(l, label=y) for l, y in zip(row["lines"], truth.labels)]
    return dict(row, method="ground_truth", lines=lines, first_error_line=truth.first_error)


def agreement(wd: Workdir) -> dict:
    """Line-label agreement and cost ratio between binary search and MC on the same responses."""
    bs = {r["response_id"]: r for r in label_lib.read_labels(wd.labels("binary_search"))}
    mc = label_lib.read_labels(wd.labels("monte_carlo"))
    same = total = 0
    bs_cost = mc_cost = bs_exec = mc_exec = 0
    for row in mc:
        other = bs.get(row["response_id"])
        if other is None:
            continue
        for a, b in zip(row["lines"], other["lines"]):
            if a["label"] != 0:
                same += a["label"] == b["label"]
                total += 1
        mc_cost += row["rollouts"]
        bs_cost += other["rollouts"]
        mc_exec += row["executions"]
        bs_exec += other["executions"]
    return {"responses": len(mc), "lines": total, "line_agreement": same / max(total, 1),
            "rollout_ratio": mc_cost / max(bs_cost, 1), "execution_ratio": mc_exec / max(bs_exec, 1),
            "mc_rollouts": mc_cost, "bs_rollouts": bs_cost}
