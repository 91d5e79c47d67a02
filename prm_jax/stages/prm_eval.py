"""Stage `prm_eval`: does the PRM locate the wrong line? Measured on held-out compositions only
(the test split, never seen by SFT, labelling or PRM training), against ground truth.

* `probe`: the counterfactual probe (`prm_jax.prm.probe`) on `prm.probe_problems` test tasks
  with H ≥ 2 — same task, same position, reference line vs a wrong line;
* `responses`: `prm.eval_n` policy responses per probe task (temperature `sample.temperature`),
  labelled by the synthetic suite's ground truth (`prm_jax.prm.ground_truth`); line metrics
  among failing responses' lines, per horizon, with the in-sample position-table and per-task
  mean baselines beside them; `mixed` (all responses' lines) is secondary — passing responses
  make it partly a response-level figure.

Draws workdir/prm_lines.png and prm_lines.html: one failing held-out response chosen by a fixed
rule (`EXAMPLE_RULE`), its prompt, per-line PRM scores beside its binary-search labels (the
labelling recipe: `label.k` completions per probe from the labelling policy) and ground truth,
and whether the PRM's first negative line is the true first error.
"""

from __future__ import annotations

import os

from absl import logging

from prm_jax.data.problem import Problem
from prm_jax.models.factory import load_run_model
from prm_jax.models.sharded import ShardedModel
from prm_jax.prm import ground_truth
from prm_jax.prm import metrics as metrics_lib
from prm_jax.prm import probe as probe_lib
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.prm import label as label_lib
from prm_jax.prm import line_picture
from prm_jax.prm.score import score_lines
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.sandbox import SandboxPool
from prm_jax.stages import common
from prm_jax.stages.context import StageContext


def probe_problems(config) -> list[Problem]:
    """Held-out-composition tasks of the probe (the test split; its first `data.num_test` are
    the SFT evaluation tasks)."""
    return common.problems(config, "test", config.prm.probe_problems)


def run_probe(prm: ShardedModel, tok, problems, seed: int) -> dict:
    pairs = probe_lib.make_pairs(problems, seed=seed)
    right = score_lines(prm, tok, [p.prompt for p in pairs], [p.right for p in pairs])
    wrong = score_lines(prm, tok, [p.prompt for p in pairs], [p.wrong for p in pairs])
    return probe_lib.probe_metrics(pairs, right, wrong)


def sample_responses(ctx: StageContext, problems) -> list[tuple[Problem, str]]:
    config = ctx.config
    policy = load_run_model(config, ctx.workdir.policy)
    out = Sampler(policy, ctx.tokenizer, mesh=ctx.mesh).generate(
        [p.prompt for p in problems],
        SamplingConfig(temperature=config.sample.temperature, n=config.prm.eval_n,
                       max_new_tokens=config.sample.max_new_tokens, stop_strings=common.STOP),
        seed=config.seed + 7)
    return [(problems[i], text) for i, text in zip(out.prompt_index, out.texts)]


def judged_responses(ctx: StageContext, problems) -> tuple[list, int]:
    """The policy's non-empty responses to `problems` with their ground truth, ((problem,
    response), truth) pairs, masked or line-less ones left out; and how many were left out."""
    items = [(p, r) for p, r in sample_responses(ctx, problems) if r.strip()]
    with SandboxPool() as pool:
        truths = ground_truth.ground_truth([(p, r, None) for p, r in items], SandboxVerifier(pool))
    kept = [(item, t) for item, t in zip(items, truths) if not t.masked and t.labels]
    return kept, len(items) - len(kept)


def run_responses(ctx: StageContext, prm: ShardedModel, problems) -> tuple[dict, list]:
    kept, masked = judged_responses(ctx, problems)
    scores = score_lines(prm, ctx.tokenizer, [p.prompt for (p, _), _ in kept],
                         [r for (_, r), _ in kept])
    report = metrics_lib.failing_line_report(
        scores, [list(t.labels) for _, t in kept], [t.passed for _, t in kept],
        [p.meta["horizon"] for (p, _), _ in kept], [p.task_id for (p, _), _ in kept])
    report["pass_rate"] = sum(t.passed for _, t in kept) / max(len(kept), 1)
    report["masked"] = masked
    return report, [(p, r, t, s) for ((p, r), t), s in zip(kept, scores)]


EXAMPLE_RULE = ("the first failing held-out response, in sampling order, whose true first error "
                "is not its first step line (else the first failing one)")


def choose_example(scored):
    """The response `EXAMPLE_RULE` names, or None when every response passes."""
    failing = [x for x in scored if not x[2].passed]
    later = [x for x in failing if (x[2].first_error or 0) > 0]
    return (later or failing or [None])[0]


def _draw(ctx: StageContext, scored) -> None:
    chosen = choose_example(scored)
    if chosen is None:
        return
    config, wd = ctx.config, ctx.workdir
    p, response, truth, scores = chosen
    labels = {"truth": list(truth.labels)}
    note = "truth: ground truth"
    policy_dir = common.labelling_policy_path(config, wd)
    if os.path.isdir(policy_dir):
        rollout = common.rollout_policy(ctx, load_run_model(config, policy_dir), config.label.temperature)
        with SandboxPool() as pool:
            row = label_lib.label_batch(
                [label_lib.Response(p, response, passed=False)], rollout, SandboxVerifier(pool),
                label_lib.LabelConfig(k=config.label.k, wave=config.label.wave, seed=config.seed))[0]
        labels = {"BS": [l["label"] for l in row["lines"]], **labels}
        note = f"BS: binary search, K={config.label.k} ({row['rollouts']} rollouts); {note}"
    example = line_picture.LineExample(prompt=p.prompt, response=response, scores=scores,
                                       labels=labels, true_first_error=truth.first_error)
    title = f"{p.task_id} (held-out composition, H={p.meta['horizon']}): PRM line scores"
    caption = f"Chosen as {EXAMPLE_RULE}. {note}."
    line_picture.render_png(example, wd.path("prm_lines.png"), title, caption)
    with open(wd.path("prm_lines.html"), "w") as f:
        f.write(line_picture.render_html(example, f"{title}. {caption}"))


def run(ctx: StageContext) -> dict:
    config = ctx.config
    prm = ShardedModel(load_run_model(config, ctx.workdir.prm), ctx.mesh)
    problems = probe_problems(config)
    result = {"probe": run_probe(prm, ctx.tokenizer, problems, config.seed)}
    result["responses"], scored = run_responses(ctx, prm, problems)
    _draw(ctx, scored)
    pr, resp = result["probe"], result["responses"]
    print(f"PRM probe on held-out compositions: wrong line below the right one in "
          f"{pr['pair_accuracy']:.3f} of {pr['pairs']} pairs (position/task-mean baselines 0.5), "
          f"line AUROC right vs wrong {pr['pair_auroc']:.3f} (0.5); "
          f"program-line AUROC {pr['program_auroc']:.3f} (position "
          f"{pr['baselines']['position']['program_auroc']:.3f}); comment lines mean |score| "
          f"{pr['comment_lines']['mean_abs_score']:.3f}")
    f = resp["failing"]
    print(f"PRM on {resp['failing_responses']} failing held-out responses: line AUROC "
          f"{f['scorer']['auroc']:.3f} (position {f['position']['auroc']:.3f}, task mean "
          f"{f['task_mean']['auroc']:.3f}); first-error accuracy {f['scorer']['first_error_accuracy']:.3f} "
          f"(position {f['position']['first_error_accuracy']:.3f})")
    logging.info("prm_eval done")
    return result
