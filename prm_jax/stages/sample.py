"""Stage `sample`: responses to the labelling problems from several policy checkpoints — the
SFT snapshots (`sample.snapshot_n` each), the final SFT policy (`sample.n`) and the snapshots of
the outcome-only RL run (`sample.rl_baseline_n` each; the paper's order: the PRM learns from the
responses of the policy it will later guide) — executed once.

Writes workdir/responses.jsonl (atomically); a re-run reads it back.
"""

from __future__ import annotations

import os

from prm_jax.data.problem import Problem
from prm_jax.jsonio import read_jsonl, write_jsonl_atomic
from prm_jax.models.factory import load_run_model
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.stages.context import StageContext
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.sandbox import SandboxPool
from prm_jax.stages import common
from prm_jax.run_config import RunConfig
from prm_jax.workdir import is_done

# Labelling problems are drawn with this offset to the data seed (SFT uses the seed itself).
LABEL_SEED_OFFSET = 1000


def labelling_problems(config: RunConfig):
    return common.problems(config, "train", config.sample.num_problems, offset_seed=LABEL_SEED_OFFSET)


def _draw(ctx: StageContext) -> list[dict]:
    config, wd, tok, mesh = ctx.config, ctx.workdir, ctx.tokenizer, ctx.mesh
    problems = labelling_problems(config)
    sources = [(f"policy_step{s}", config.sample.snapshot_n) for s in config.sft.snapshot_steps
               if is_done(wd.snapshot(s))]
    sources.append(("policy", config.sample.n))
    if config.sample.rl_baseline_n:
        baseline = config.rl_baseline
        for it in baseline.snapshot_iterations:
            path = wd.run_policy(baseline.name, it)
            if not is_done(path):
                raise FileNotFoundError(
                    f"sample.rl_baseline_n={config.sample.rl_baseline_n}: {path} is missing; run "
                    "the rl_baseline stage first (stages ... 'rl_baseline', 'sample' ...)")
            sources.append((os.path.basename(path), config.sample.rl_baseline_n))
    rows = []
    for index, (name, n) in enumerate(sources):
        if n <= 0:
            continue
        policy = load_run_model(ctx.config, wd.path(name))
        out = Sampler(policy, tok, mesh=mesh).generate(
            [p.prompt for p in problems],
            SamplingConfig(temperature=config.sample.temperature, n=n,
                           max_new_tokens=config.sample.max_new_tokens, stop_strings=common.STOP),
            seed=config.seed if name == "policy" else config.seed + 1000 + index)
        rows += [{"task_id": problems[i].task_id, "problem": problems[i].to_dict(),
                  "policy": name, "response_id": f"{name}/s{j}", "response": text}
                 for i, j, text in zip(out.prompt_index, out.sample_index, out.texts)]
    with SandboxPool() as pool:
        verdicts = SandboxVerifier(pool).verify(
            [(Problem.from_dict(r["problem"]), r["response"]) for r in rows])
    for row, verdict in zip(rows, verdicts):
        row["passed"] = verdict
    return rows


def run(ctx: StageContext) -> dict:
    config = ctx.config
    wd = ctx.workdir
    resumed = os.path.exists(wd.responses)
    if resumed:
        rows = read_jsonl(wd.responses, "responses file")
    else:
        rows = _draw(ctx)
        write_jsonl_atomic(wd.responses, rows)
    by_policy: dict[str, list[int]] = {}
    for r in rows:
        if r["passed"] is not None:
            stats = by_policy.setdefault(r.get("policy", "policy"), [0, 0])
            stats[0] += r["passed"]
            stats[1] += 1
    rates = {name: c / t for name, (c, t) in by_policy.items()}
    scorable = sum(t for _, t in by_policy.values())
    rate = sum(c for c, _ in by_policy.values()) / max(scorable, 1)
    print(f"sampled {len(rows)} responses; pass rate {rate:.3f} "
          + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
    return {"responses": len(rows), "pass_rate": rate, "pass_rate_by_policy": rates,
            "masked": len(rows) - scorable, "resumed": resumed}
