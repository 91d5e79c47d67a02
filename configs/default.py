"""Default pipeline on the synthetic long-horizon suite, built-in tiny model and tokenizer.

  python -m prm_jax.main --config=configs/default.py --workdir=runs/default

Stages, in the paper's order (about 12 minutes on a 2-core CPU): `sft` trains a 2-layer d=128
decoder for 1,500 steps on 8,000 synthetic references (H = 1..4, 15% of step lines preceded by a
comment) and exports it (runs/default/policy, and a snapshot at step 750); `rl_baseline` runs PPO on the unit-test
reward alone (critic from the policy) for 20 iterations of 16 prompts × 4 samples, exporting the
policy at iterations 5, 10, 15, 20; `sample` draws one response per labelling problem from each
of those 4 checkpoints and executes them; `label` labels them by binary search (PSGPO, K = 4,
completions from the outcome-only run's policy), a random failing subset by per-line Monte
Carlo, correct ones by mutation, and mutates the references of 1,200 further training tasks (AST
mutants — incl. any-literal and line-transplant mutants — + 2 policy rewrites per line, labelled
by execution), then measures every method against
the synthetic suite's ground truth; `prm_train` trains the PRM (policy backbone + scalar head +
a likelihood term read from its own LM head, MSE on line-end tokens) on all four label files
(reference mutation, binary search, Monte Carlo, mutation); `prm_eval` runs the counterfactual
probe and scores policy responses on held-out compositions against ground truth, and draws
runs/default/prm_lines.png; `rl` runs PSGPO (PPO + dense PRM line rewards + critic initialised
from the PRM) from the SFT policy with the same budget and seeds as `rl_baseline`. Both RL runs
report held-out greedy pass@1 before and after (`<run>.test_before`, `<run>.test`); figures to
expect are in the README, "Results". Re-running resumes finished work. configs/rl_ppo.py holds
the other RL arms.

Stage `model_check` (`--config.stages="('model_check',)"`) builds, shards, trains a few steps
on bundled code, exports and reloads the model (uses batch_size, seq_len, train_steps,
learning_rate).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Stages run in order; names are keys of prm_jax.run.STAGES.
    config.stages = ("sft", "rl_baseline", "sample", "label", "prm_train", "prm_eval", "rl")
    config.seed = 0
    # A local directory with tokenizer.json, "builtin", or "" = init_from's tokenizer if
    # init_from is set, else the built-in one. A tokenizer that does not match the model is an error.
    config.tokenizer = ""
    # A HF checkpoint directory to start from instead of random weights ("" = random init from
    # config.model; with init_from the shape comes from its config.json, dtypes and remat from
    # config.model).
    config.init_from = ""
    # Call jax.distributed.initialize() first (multi-host runs).
    config.distributed = False

    config.model = ml_collections.ConfigDict()
    config.model.model_type = "llama"
    config.model.vocab_size = 0  # 0 = the tokenizer's size
    config.model.hidden_size = 128
    config.model.intermediate_size = 384
    config.model.num_layers = 2
    config.model.num_heads = 4
    config.model.num_kv_heads = 2
    config.model.rope_theta = 10000.0
    config.model.tie_word_embeddings = True
    config.model.max_position_embeddings = 1024
    config.model.dtype = "float32"
    config.model.param_dtype = "float32"
    # Recompute each block's activations in the backward pass (memory, not results); dtypes and
    # remat apply to every model the run loads (init_from and each stage's saved models).
    config.model.remat = False

    # Mesh axis sizes; -1 = all remaining devices.
    config.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))

    # Synthetic suite.
    config.data = ml_collections.ConfigDict(dict(
        seed=0, num_train=8000, num_test=192, min_horizon=1, max_horizon=4, comment_fraction=0.15))
    # snapshot_steps: SFT steps whose policy is exported too (responses from several checkpoints);
    # logits_chunk (here and in the RL sections): sequence positions of logits computed at a time
    # for the log-probs (memory only; 0 = the full [B, T, V] logits).
    config.sft = ml_collections.ConfigDict(dict(
        steps=1500, batch_size=16, learning_rate=3e-3, warmup_steps=30, checkpoint_every=250,
        seq_len=256, snapshot_steps=(750,), logits_chunk=128))
    # Responses per labelling problem: n from the final SFT policy, snapshot_n from each SFT
    # snapshot, rl_baseline_n from each of the rl_baseline run's snapshots (the paper's source).
    config.sample = ml_collections.ConfigDict(dict(
        num_problems=96, n=0, snapshot_n=0, rl_baseline_n=1, temperature=0.8, max_new_tokens=160))
    # mc_responses: failing responses (random across tasks) also labelled by per-line MC;
    # reference_tasks: references of further training tasks mutated line by line (AST mutants,
    # mutation_per_line each, and teacher_n policy rewrites at teacher_temperature), labelled by
    # execution; ground_truth: label accuracy of every method against the synthetic ground truth.
    config.label = ml_collections.ConfigDict(dict(
        k=4, wave=2, temperature=0.8, batch_size=64, mc_responses=24, mutation_responses=32,
        mutation_per_line=3, reference_tasks=1200, teacher_n=2, teacher_temperature=1.0,
        ground_truth=True))
    # label_sources: label files the PRM trains on ("oracle" = ground truth, upper bound only);
    # likelihood_clip: the PRM adds a·max(m, −10)/10, m = the least likely response token so far
    # under its own LM head (`ScalarHeadModel`; 0 = the scalar head alone);
    # probe_problems / eval_n: prm_eval's held-out-composition tasks and responses per task.
    config.prm = ml_collections.ConfigDict(dict(
        steps=600, batch_size=16, learning_rate=1e-3, warmup_steps=20, checkpoint_every=100,
        loss="prm_mse", selection="full",
        label_sources=("reference_mutation", "binary_search", "monte_carlo", "mutation"),
        line_token_targets=False, pair_weight=1.0, likelihood_clip=10.0, heldout_fraction=0.0,
        probe_problems=96, eval_n=2))

    # Stage "rl_baseline": the paper's first RL run — PPO on the unit-test reward only, critic
    # from the policy — exporting its policy at `snapshots` evenly spaced iterations for `sample`.
    # It is also the outcome-only arm that `rl` is compared with (same budget and seeds).
    config.rl_baseline = ml_collections.ConfigDict(dict(
        name="rl_baseline", iterations=20, prompts=16, samples=4, num_problems=512,
        temperature=1.0, max_new_tokens=96, estimator="gae", dense=False, critic_init="policy", empty="mask",
        kl_coef=0.01, kl_mode="reward", gamma=1.0, lam=1.0, whiten=True, clip=0.2, value_clip=0.5,
        policy_lr=2e-4, critic_lr=1e-3, epochs=1, minibatches=2, micro_batches=1, eval_every=5,
        checkpoint_every=5, snapshots=4, seed=0, logits_chunk=128))

    # RL (stage "rl"): PSGPO by default — PPO with the unit-test reward, the PRM's dense line
    # rewards and a PRM-initialised critic. configs/rl_ppo.py holds the other arms.
    config.rl = ml_collections.ConfigDict(dict(
        name="rl", iterations=20, prompts=16, samples=4, num_problems=512, temperature=1.0,
        max_new_tokens=96, estimator="gae", dense=True, lambda_fail=0.25, lambda_pass=0.025,
        dense_form="psgpo", normalize_by="code_lines", truncated="score", empty="mask", critic_init="prm",
        critic_affine=(1.0, 0.0), critic_warmup=0, kl_coef=0.01, kl_mode="reward", gamma=1.0,
        lam=1.0, whiten=True, clip=0.2, value_clip=0.5, entropy_coef=0.0, policy_lr=2e-4,
        critic_lr=1e-3, epochs=1, minibatches=2, micro_batches=1, eval_every=5,
        checkpoint_every=5, snapshots=0, seed=0, logits_chunk=128))

    # model_check stage.
    config.batch_size = 8
    config.seq_len = 128
    config.train_steps = 20
    config.learning_rate = 3e-3
    return config
