"""What several stages share: synthetic problems, loop configs,
greedy pass@1 by horizon, sampled pass@k, and stored training results."""

from __future__ import annotations

import json
import os

from prm_jax.data import synthetic
from prm_jax.jsonio import write_json_atomic
from prm_jax.run_config import RunConfig, TrainSection
from prm_jax.train.loop import LoopConfig

# Stop strings for completions of synthetic (and HumanEval-style) function bodies.
STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")


def problems(config: RunConfig, split: str, num: int, offset_seed: int = 0):
    """Synthetic problems drawn with seed `data.seed + offset_seed`; the held-out compositions
    always come from `data.seed` (one split for every stage, whatever the offset)."""
    d = config.data
    return synthetic.generate(synthetic.SyntheticConfig(
        seed=d.seed + offset_seed, num_problems=num, min_horizon=d.min_horizon,
        max_horizon=d.max_horizon, split=split, split_seed=d.seed,
        comment_fraction=d.comment_fraction))


def labelling_policy_path(config: RunConfig, wd) -> str:
    """The policy whose completions label the sampled responses (binary search, Monte Carlo,
    rewrites): the outcome-only RL run's final policy when the responses come from its
    snapshots (the paper's order), else the SFT policy."""
    if config.sample is not None and config.sample.rl_baseline_n and config.rl_baseline:
        return wd.run_policy(config.rl_baseline.name)
    return wd.policy


def rollout_policy(ctx, policy, temperature: float, max_new_tokens: int = 0, min_rows: int = 1):
    """A `SamplerPolicy` completing (problem, prefix) requests with `policy` on the run's mesh
    (max_new_tokens 0 = `sample.max_new_tokens`), stopping at the end of the function body;
    every call padded to at least `min_rows` rows (`Sampler`)."""
    from prm_jax.prm.rollouts import SamplerPolicy
    from prm_jax.sampling import Sampler, SamplingConfig

    return SamplerPolicy(Sampler(policy, ctx.tokenizer, mesh=ctx.mesh, min_rows=min_rows),
                         SamplingConfig(temperature=temperature,
                                        max_new_tokens=max_new_tokens or ctx.config.sample.max_new_tokens,
                                        stop_strings=STOP))


def loop_config(c: TrainSection, seed: int) -> LoopConfig:
    return LoopConfig(steps=c.steps, batch_size=c.batch_size, learning_rate=c.learning_rate,
                      warmup_steps=c.warmup_steps, checkpoint_every=c.checkpoint_every,
                      log_every=10, seed=seed)


def pass_at_1_by_horizon(model, tok, problem_list, max_new_tokens: int, mesh_, *,
                         per_problem: bool = False) -> dict:
    """Greedy pass@1 of `model` on `problem_list`, overall and by horizon; with `per_problem`
    also "problems": one row per problem {task_id, horizon, passed (0/1, None when the sandbox
    could not score it), tokens (the response's length in tokens)}, in `problem_list` order —
    what confidence intervals over problems and paired comparisons between runs need."""
    from prm_jax.sampling import Sampler, SamplingConfig
    from prm_jax.stages.evaluate import sample_and_evaluate

    _, result, out = sample_and_evaluate(
        Sampler(model, tok, mesh=mesh_), problem_list,
        SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens, stop_strings=STOP), [1])
    summary = result["summary"]
    figures = {"pass@1": summary["pass@1"], "by_horizon": summary.get("by_horizon", {})}
    if per_problem:
        tokens = {problem_list[p].task_id: len(ids) for p, ids in zip(out.prompt_index, out.token_ids)}
        rows = {row["task_id"]: row for row in result["problems"]}
        figures["problems"] = [
            {"task_id": p.task_id, "horizon": p.meta.get("horizon"),
             "passed": (int(rows[p.task_id]["correct"] > 0) if rows.get(p.task_id, {}).get("n")
                        else None),
             "tokens": tokens.get(p.task_id)}
            for p in problem_list]
    return figures


def sampled_pass_at_k(model, tok, problem_list, *, n: int, temperature: float,
                      max_new_tokens: int, mesh_=None, seed: int = 0) -> dict:
    """pass@k for k = 1..n from `n` samples per problem at `temperature` (the unbiased
    estimator 1 − C(n−c, k)/C(n, k) per problem, averaged), and one row per problem
    {task_id, horizon, n (scorable samples), correct}, in `problem_list` order. Keys depend on
    (seed, problem index, sample), so two policies evaluated with one seed share their draws'
    random numbers (a paired comparison)."""
    from prm_jax.sampling import Sampler, SamplingConfig
    from prm_jax.stages.evaluate import sample_and_evaluate

    _, result, _ = sample_and_evaluate(
        Sampler(model, tok, mesh=mesh_), problem_list,
        SamplingConfig(temperature=temperature, n=n, max_new_tokens=max_new_tokens, stop_strings=STOP),
        list(range(1, n + 1)), seed=seed)
    rows = {row["task_id"]: row for row in result["problems"]}
    return {"n": n, "temperature": temperature, "seed": seed,
            **{k: v for k, v in result["summary"].items() if k.startswith("pass@")},
            "problems": [{"task_id": p.task_id, "horizon": p.meta.get("horizon"),
                          "n": rows.get(p.task_id, {}).get("n", 0),
                          "correct": rows.get(p.task_id, {}).get("correct", 0)}
                         for p in problem_list]}


def without_problems(figures: dict) -> dict:
    """`pass_at_1_by_horizon`'s figures without the per-problem rows (for summaries)."""
    return {k: v for k, v in figures.items() if k != "problems"}


def save_train_result(run_dir: str, result: dict) -> None:
    write_json_atomic(os.path.join(run_dir, "result.json"), result)


def load_train_result(run_dir: str) -> dict:
    """The final figures of a finished training run ({} if it predates result.json)."""
    path = os.path.join(run_dir, "result.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
