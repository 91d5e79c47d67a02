"""Stages `rl` and `rl_baseline`: PPO (or GRPO/RLOO) from the SFT policy on the synthetic
suite's training tasks, with the unit-test reward and — by config — the PRM's dense line rewards
and a PRM-initialised critic (PSGPO). `rl_baseline` is the paper's first RL run (config section
`rl_baseline`: unit-test reward only, critic from the policy), whose evenly spaced snapshots
answer the labelling problems the PRM is trained on; `rl` then runs with that PRM. Named runs
(`rl.name`) let several arms share a workdir.

Per iteration: prompts from a checkpointable grain loader → the Sampler (current policy
weights, no recompilation) → the sandbox → `build_rollout` → learner experience pass → rewards
(`rl.rewards`) → advantages → PPO update; metrics to workdir/<name>/metrics.jsonl and TensorBoard;
held-out greedy pass@1 every `eval_every` iterations. Checkpoints hold policy and critic states
(parameters, optimizer moments, step), the iteration and the data iterator; sampling seeds are
a function of (seed, rl.seed, iteration), so a killed run resumes onto the same trajectory.
Writes workdir/policy_<name> (HF checkpoint), workdir/policy_<name>_it<N> at the
`snapshots` iterations, workdir/<name>/result.json, and the held-out evaluations before and
after with one row per problem (eval_before.json, eval_after.json).
"""

from __future__ import annotations

import json
import time

import numpy as np

from prm_jax import plots
from prm_jax.data.loader import problem_loader
from prm_jax.data.tfds_builder import problem_to_record
from prm_jax.jsonio import write_json_atomic
from prm_jax.models import save_pretrained
from prm_jax.models.factory import load_run_model
from prm_jax.progress import progress_bar
from prm_jax.prm.rollouts import SandboxVerifier
from prm_jax.rl.critic_init import fit_affine, init_critic
from prm_jax.rl.learner import LearnerConfig, PPOLearner
from prm_jax.rl.metrics import rollout_metrics
from prm_jax.rl.rewards import RewardConfig
from prm_jax.rl.rollout import build_rollout, reward_parts
from prm_jax.run_config import RLConfig
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.sandbox import SandboxPool
from prm_jax.stages import common
from prm_jax.stages.context import StageContext
from prm_jax.train.checkpoint import Checkpointer, abstract_like
from prm_jax.train.loop import MetricsWriter
from prm_jax.workdir import clear_done, is_done, mark_done

# Training prompts are drawn with this offset to the data seed (SFT: 0, labelling: 1000).
RL_SEED_OFFSET = 2000


def learner_config(c: RLConfig) -> LearnerConfig:
    return LearnerConfig(estimator=c.estimator, gamma=c.gamma, lam=c.lam, whiten=c.whiten,
                         kl_coef=c.kl_coef, kl_mode=c.kl_mode, clip_low=c.clip, clip_high=c.clip,
                         value_clip=c.value_clip, entropy_coef=c.entropy_coef,
                         policy_lr=c.policy_lr, critic_lr=c.critic_lr, epochs=c.epochs,
                         minibatches=c.minibatches, micro_batches=c.micro_batches,
                         temperature=c.temperature, logits_chunk=c.logits_chunk)


def reward_config(c: RLConfig) -> RewardConfig:
    return RewardConfig(dense=c.dense, lambda_fail=c.lambda_fail, lambda_pass=c.lambda_pass,
                        dense_form=c.dense_form, normalize_by=c.normalize_by, truncated=c.truncated,
                        empty=c.empty)


def _build_learner(ctx: StageContext, c: RLConfig) -> PPOLearner:
    wd = ctx.workdir
    policy = load_run_model(ctx.config, wd.policy)
    reference = load_run_model(ctx.config, wd.policy)
    prm = load_run_model(ctx.config, wd.prm) if c.uses_prm else None
    critic = None
    if c.uses_critic:
        critic = init_critic("prm" if c.critic_init == "prm_fit" else c.critic_init, prm=prm, policy=policy, affine=tuple(c.critic_affine),
                             seed=_seed(ctx, c))
    return PPOLearner(policy, reference, critic=critic, prm=prm if c.dense else None,
                      mesh=ctx.mesh, config=learner_config(c))


def _seed(ctx: StageContext, c: RLConfig) -> int:
    """The run's RL seed: the run's `seed`, moved by `rl.seed` (0 leaves it), so several RL
    seeds share one workdir's SFT policy and PRM."""
    return ctx.config.seed + 1_000_003 * c.seed


def _held_out_pass_at_1(ctx: StageContext, learner: PPOLearner, test_problems, *,
                        per_problem: bool = False) -> dict:
    return common.pass_at_1_by_horizon(learner.policy.model(), ctx.tokenizer, test_problems,
                                       ctx.config.sample.max_new_tokens, ctx.mesh,
                                       per_problem=per_problem)


def run(ctx: StageContext) -> dict:
    """Stage `rl` (config section `rl`)."""
    return run_section(ctx, ctx.config.rl)


def run_baseline(ctx: StageContext) -> dict:
    """Stage `rl_baseline` (config section `rl_baseline`)."""
    return run_section(ctx, ctx.config.rl_baseline)


def _export(ctx: StageContext, learner: PPOLearner, path: str) -> None:
    clear_done(path)
    save_pretrained(learner.policy.model(), path, tokenizer=ctx.tokenizer)
    mark_done(path)


def run_section(ctx: StageContext, c: RLConfig) -> dict:
    config, wd = ctx.config, ctx.workdir
    run_dir, export = wd.run_dir(c.name), wd.run_policy(c.name)
    if is_done(export):
        return dict(common.load_train_result(run_dir), resumed=True)
    learner = _build_learner(ctx, c)
    test_problems = common.problems(config, "test", config.data.num_test)
    train_problems = common.problems(config, "train", c.num_problems, offset_seed=RL_SEED_OFFSET)
    loader = problem_loader([problem_to_record(p) for p in train_problems], batch_size=c.prompts,
                            seed=_seed(ctx, c) + RL_SEED_OFFSET)
    iterator = iter(loader)
    sampler = Sampler(learner.policy.model(), ctx.tokenizer, mesh=ctx.mesh)
    sampling = SamplingConfig(temperature=c.temperature, n=c.samples,
                              max_new_tokens=c.max_new_tokens, stop_strings=common.STOP)
    rewards = reward_config(c)
    row_multiple = learner.batch_split * c.minibatches * c.micro_batches
    checkpoints = Checkpointer(f"{run_dir}/checkpoints")
    start = checkpoints.latest_step() or 0
    if start:
        targets = {"policy": abstract_like(learner.policy.state), "data": iterator}
        if learner.critic:
            targets["critic"] = abstract_like(learner.critic.state)
        restored = checkpoints.restore(start, **targets)
        learner.policy.state = restored["policy"]
        if learner.critic:
            learner.critic.state = restored["critic"]
    writer = MetricsWriter(run_dir, c.name, resume_step=start)
    before_path = f"{run_dir}/eval_before.json"
    if start == 0:
        initial = _held_out_pass_at_1(ctx, learner, test_problems, per_problem=True)
        write_json_atomic(before_path, initial)
        writer.write(0, {"eval/pass@1": initial["pass@1"]})
    else:
        with open(before_path) as f:
            initial = json.load(f)
    bar = progress_bar(total=c.iterations, initial=start, desc=c.name, unit="iter", dynamic_ncols=True)
    t_start = time.perf_counter()
    last: dict = writer.last()
    with SandboxPool() as pool:
        verifier = SandboxVerifier(pool)
        for it in range(start, c.iterations):
            times = {}
            t0 = time.perf_counter()
            problems = next(iterator)
            sampler.update_params(learner.policy_params())
            out = sampler.generate([p.prompt for p in problems], sampling,
                                   seed=_seed(ctx, c) * 100_003 + it)
            times["time/sample"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            passed = verifier.verify([(problems[i], text) for i, text in zip(out.prompt_index, out.texts)])
            times["time/execute"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            batch = build_rollout(sampler.encode([p.prompt for p in problems]), out, passed,
                                  max_new_tokens=c.max_new_tokens, reward_config=rewards,
                                  row_multiple=row_multiple, pad_id=ctx.tokenizer.pad_token_id or 0)
            experience = learner.experience(batch)
            parts = reward_parts(batch, experience.get("prm"), rewards)
            if it == 0 and c.uses_critic and c.critic_init == "prm_fit":
                _, returns, _ = learner.advantages(batch, experience, parts)
                affine = fit_affine(experience["values"], returns, batch.response_mask)
                learner.rescale_critic(*affine)
                experience = learner.experience(batch)
                print(f"{c.name}: critic = {affine[0]:.3f}·PRM + {affine[1]:.3f} (fitted to the first batch)")
            advantages, returns, kl_reward = learner.advantages(batch, experience, parts)
            times["time/score"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            metrics = learner.update(batch, experience, advantages, returns,
                                     train_policy=it >= c.critic_warmup,
                                     seed=it + 100_003 * c.seed)
            times["time/update"] = time.perf_counter() - t0
            metrics = {**{f"loss/{k}": v for k, v in metrics.items()},
                       **rollout_metrics(batch, parts, experience, advantages, returns, kl_reward),
                       **times, "sampler/tokens_per_s": sum(map(len, out.token_ids)) / max(times["time/sample"], 1e-9)}
            if c.eval_every and (it + 1) % c.eval_every == 0 and it + 1 < c.iterations:
                metrics["eval/pass@1"] = _held_out_pass_at_1(ctx, learner, test_problems)["pass@1"]
            writer.write(it + 1, metrics)
            last = metrics
            bar.update(1)
            bar.set_postfix(pass_rate=f"{metrics['rollout/pass_rate']:.3f}")
            if it + 1 in c.snapshot_iterations:
                # Before the checkpoint: a run killed in between redoes this iteration (the
                # same trajectory) and exports the snapshot again.
                _export(ctx, learner, wd.run_policy(c.name, it + 1))
            if (it + 1) % c.checkpoint_every == 0 or it + 1 == c.iterations:
                items = {"policy": learner.policy.state, "data": iterator}
                if learner.critic:
                    items["critic"] = learner.critic.state
                checkpoints.save(it + 1, **items)
    checkpoints.close()
    bar.close()
    final = _held_out_pass_at_1(ctx, learner, test_problems, per_problem=True)
    write_json_atomic(f"{run_dir}/eval_after.json", final)
    writer.write(c.iterations, {"eval/pass@1": final["pass@1"]})
    writer.close()
    result = {"test": common.without_problems(final), "iterations": c.iterations,
              "last_iteration": {k: v for k, v in last.items() if not k.startswith("time/")},
              "seconds": time.perf_counter() - t_start}
    result["test_before"] = common.without_problems(initial)
    common.save_train_result(run_dir, result)
    _export(ctx, learner, export)
    plots.compare_curves(plots.rl_run_metrics(wd.root), wd.path("rl_runs.png"))
    print(f"{c.name}: held-out pass@1 {final['pass@1']:.3f}"
          + f" (before {initial['pass@1']:.3f})")
    return dict(result, resumed=False)
