"""The PPO learner: trainable policy and critic, frozen reference and PRM, on one mesh.

Per iteration (see `prm_jax.rl.rollout` for the batch layout):
  1. `experience(batch)`: one jitted pass over the rollout batch — old log-probs (recomputed by
     the trainer at the sampling temperature), reference log-probs, critic values V_t (read at
     P + t − 1), PRM values at every response token (read at P + t) and the policy's entropy.
  2. `advantages(...)`: rewards (+ β·k1 in the reward for PPO) → the registered estimator
     (`algos.ESTIMATORS`: gae, grpo, rloo) → advantages and value targets.
  3. `update(...)`: epochs × mini-batches; each mini-batch is one jitted, donated step that scans
     over its micro-batches, accumulating gradients of losses normalised by the mini-batch's
     global token count (so 1 or 4 micro-batches give the same update), then applies two optax
     chains (policy and critic: separate learning rates and clipping).
Policy and reference log-probs and the entropy come from the backbone's hidden states,
`logits_chunk` response positions of logits at a time (`prm_jax.models.logprobs`).
Policy and critic reuse `ShardedTrainer` for placed parameters, optimizer state and shardings.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from prm_jax import sharding as sharding_lib
from prm_jax.models.logprobs import LOGITS_CHUNK, lm_logprobs
from prm_jax.models.sharded import ShardedModel
from prm_jax.rl import algos
from prm_jax.rl.rollout import RolloutBatch
from prm_jax.train.losses import prm_values
from prm_jax.train.step import ShardedTrainer, TrainState


@dataclasses.dataclass(frozen=True, kw_only=True)
class LearnerConfig:
    # Advantage estimator: "gae" (PPO with a critic), "grpo" or "rloo" (critic-free, group baselines).
    estimator: str = "gae"
    gamma: float = 1.0
    lam: float = 1.0
    # Whiten GAE advantages over the valid tokens of the rollout batch.
    whiten: bool = True
    # KL to the reference: β; "reward" puts k1 in the per-token reward (PPO), "loss" adds β·k3
    # to the policy loss (GRPO/RLOO style).
    kl_coef: float = 0.01
    kl_mode: str = "reward"
    clip_low: float = 0.2
    clip_high: float = 0.2
    clip_c: float = 3.0
    value_clip: float = 0.5
    entropy_coef: float = 0.0
    policy_lr: float = 1e-5
    critic_lr: float = 1e-4
    clip_norm: float = 1.0
    epochs: int = 1
    minibatches: int = 1
    micro_batches: int = 1
    # Log-probs (old, new, reference) are computed on logits / temperature (the sampling one).
    temperature: float = 1.0
    # Sequence positions of logits materialised at a time for those log-probs and the entropy
    # (`prm_jax.models.logprobs`): peak ≈ rows·logits_chunk·V floats; 0 = all positions at once.
    logits_chunk: int = LOGITS_CHUNK

    def __post_init__(self):
        if self.estimator not in algos.ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r}; expected one of {sorted(algos.ESTIMATORS)}")
        if self.kl_mode not in ("reward", "loss"):
            raise ValueError(f"kl_mode={self.kl_mode!r}; expected reward or loss")
        if self.logits_chunk < 0:
            raise ValueError(f"logits_chunk={self.logits_chunk}; expected >= 0 (0 = unchunked)")


def response_logprobs(model, tokens_BxL, attention_BxL, P: int, N: int, temperature: float,
                      chunk: int | None, with_entropy: bool = True):
    """log π(y_t | prefix) of response tokens t = 0..N−1 (logits at column P + t − 1, divided by
    the temperature) and, with `with_entropy`, the policy's entropy there, both `[B, N]`; `chunk`
    positions of logits at a time (`prm_jax.models.logprobs`; 0/None: all N at once)."""
    return lm_logprobs(model, tokens_BxL, attention_BxL, start=P - 1, stop=P + N - 1,
                       temperature=temperature, chunk=chunk, with_entropy=with_entropy)


def _tree_add(a, b):
    return jax.tree.map(jnp.add, a, b)


class PPOLearner:
    def __init__(self, policy, reference, *, critic=None, prm=None, mesh, config: LearnerConfig):
        if config.estimator == "gae" and critic is None:
            raise ValueError("estimator 'gae' needs a critic")
        self.config, self.mesh = config, mesh
        self.policy = ShardedTrainer(policy, self._tx(config.policy_lr), mesh, loss_fn=None)
        self.critic = (ShardedTrainer(critic, self._tx(config.critic_lr), mesh, loss_fn=None)
                       if critic is not None else None)
        self.reference = ShardedModel(reference, mesh)
        self.prm = ShardedModel(prm, mesh) if prm is not None else None
        self.batch_split = mesh.shape["data"] * mesh.shape["fsdp"]
        critic_sh = self.critic.state_shardings if self.critic else None
        repl = sharding_lib.replicated(mesh)
        self._update_jit = jax.jit(
            self._update_step, static_argnums=(4, 5, 6),
            in_shardings=(self.policy.state_shardings, critic_sh, None, repl),
            out_shardings=(self.policy.state_shardings, critic_sh, repl), donate_argnums=(0, 1))
        self._experience_jit = jax.jit(self._experience, static_argnames=("P", "N"))

    def _tx(self, lr: float):
        return optax.chain(optax.clip_by_global_norm(self.config.clip_norm), optax.adam(lr))

    # -------------------------------------------------------------------------- experience
    def _experience(self, policy_params, ref_params, critic_params, prm_params, tokens, attention,
                    *, P: int, N: int):
        logprobs = functools.partial(response_logprobs, tokens_BxL=tokens, attention_BxL=attention,
                                     P=P, N=N, temperature=self.config.temperature,
                                     chunk=self.config.logits_chunk)
        out = {}
        out["old_logp"], out["entropy"] = logprobs(nnx.merge(self.policy.graphdef, policy_params))
        out["ref_logp"] = logprobs(nnx.merge(self.reference.graphdef, ref_params),
                                   with_entropy=False)
        if critic_params is not None:
            values = nnx.merge(self.critic.graphdef, critic_params)(tokens, mask_BxT=attention)[0]
            out["values"] = values[:, P - 1:P + N - 1]
        if prm_params is not None:
            starts = jnp.full((tokens.shape[0],), P, jnp.int32)  # responses start at P
            scores = prm_values(nnx.merge(self.prm.graphdef, prm_params), tokens, attention, starts)
            out["prm"] = scores[:, P:P + N]
        return out

    def _put_rows(self, array):
        spec = P(sharding_lib.BATCH_AXES, *([None] * (array.ndim - 1)))
        return jax.device_put(array, NamedSharding(self.mesh, spec))

    def experience(self, batch: RolloutBatch) -> dict[str, np.ndarray]:
        out = self._experience_jit(
            self.policy.state.params, self.reference.params,
            self.critic.state.params if self.critic else None,
            self.prm.params if self.prm else None,
            self._put_rows(batch.tokens), self._put_rows(batch.attention),
            P=batch.prompt_width, N=batch.response_width)
        return {k: np.asarray(jax.device_get(v)) for k, v in out.items()}

    # -------------------------------------------------------------------------- advantages
    def advantages(self, batch: RolloutBatch, experience: dict, parts: dict):
        """(advantages, returns, kl_reward) `[B, N]`; kl_reward = −β·k1 when KL is in the reward."""
        c = self.config
        mask = batch.response_mask
        kl = np.zeros_like(mask)
        if c.kl_mode == "reward" and c.kl_coef:
            kl = -c.kl_coef * np.asarray(algos.kl_penalty(experience["old_logp"],
                                                         experience["ref_logp"], "k1")) * mask
        values = experience.get("values", np.zeros_like(mask))
        parts = dict(parts, kl=kl)
        adv, returns = algos.ESTIMATORS[c.estimator](
            {k: jnp.asarray(v) for k, v in parts.items()}, jnp.asarray(values), jnp.asarray(mask),
            jnp.asarray(batch.group), batch.num_groups, gamma=c.gamma, lam=c.lam, whiten=c.whiten)
        return np.asarray(adv), np.asarray(returns), kl

    # -------------------------------------------------------------------------- update
    def _micro_loss(self, policy_params, critic_params, mb, denominator, P, N):
        c = self.config
        policy = nnx.merge(self.policy.graphdef, policy_params)
        logp, entropy = response_logprobs(policy, mb["tokens"], mb["attention"], P, N,
                                          c.temperature, c.logits_chunk)
        mask = mb["mask"]
        pg, metrics = algos.ppo_policy_loss(logp, mb["old_logp"], mb["advantages"], mask,
                                            clip_low=c.clip_low, clip_high=c.clip_high,
                                            clip_c=c.clip_c, denominator=denominator)
        metrics = dict(metrics, pg_loss=pg, entropy=(entropy * mask).sum() / denominator)
        loss = pg - c.entropy_coef * metrics["entropy"]
        if c.kl_mode == "loss" and c.kl_coef:
            kl = (algos.kl_penalty(logp, mb["ref_logp"], "k3") * mask).sum() / denominator
            loss = loss + c.kl_coef * kl
            metrics["kl_loss_k3"] = kl
        if critic_params is not None:
            critic = nnx.merge(self.critic.graphdef, critic_params)
            values = critic(mb["tokens"], mask_BxT=mb["attention"])[0][:, P - 1:P + N - 1]
            vf, vf_metrics = algos.clipped_value_loss(values, mb["old_values"], mb["returns"], mask,
                                                      clip=c.value_clip, denominator=denominator)
            loss = loss + vf
            metrics.update(vf_metrics, vf_loss=vf, vpred_mean=(values * mask).sum() / denominator)
        return loss, metrics

    def _update_step(self, policy_state: TrainState, critic_state: TrainState | None, minibatch,
                     denominator, P: int, N: int, train_policy: bool):
        critic_params = critic_state.params if critic_state is not None else None
        grad_fn = jax.value_and_grad(self._micro_loss, argnums=(0, 1), has_aux=True)

        def body(carry, mb):
            grads, metrics = carry
            (_, m), g = grad_fn(policy_state.params, critic_params, mb, denominator, P, N)
            merged = {k: (jnp.maximum(metrics[k], m[k]) if k.endswith("_max") else
                          jnp.minimum(metrics[k], m[k]) if k.endswith("_min") else metrics[k] + m[k])
                      for k in m}
            return (_tree_add(grads, g), merged), None

        first = jax.tree.map(lambda x: x[0], minibatch)
        (_, metrics0), grads0 = grad_fn(policy_state.params, critic_params, first, denominator, P, N)
        rest = jax.tree.map(lambda x: x[1:], minibatch)
        (grads, metrics), _ = jax.lax.scan(body, (grads0, metrics0), rest)
        policy_grads, critic_grads = grads
        metrics = dict(metrics, policy_grad_norm=optax.tree.norm(policy_grads))
        if train_policy:
            updates, opt = self.policy.tx.update(policy_grads, policy_state.opt_state,
                                                 policy_state.params)
            policy_state = TrainState(step=policy_state.step + 1,
                                      params=optax.apply_updates(policy_state.params, updates),
                                      opt_state=opt)
        if critic_state is not None:
            metrics["critic_grad_norm"] = optax.tree.norm(critic_grads)
            updates, opt = self.critic.tx.update(critic_grads, critic_state.opt_state,
                                                 critic_state.params)
            critic_state = TrainState(step=critic_state.step + 1,
                                      params=optax.apply_updates(critic_state.params, updates),
                                      opt_state=opt)
        return policy_state, critic_state, metrics

    def update(self, batch: RolloutBatch, experience: dict, advantages: np.ndarray,
               returns: np.ndarray, *, train_policy: bool = True, seed: int = 0) -> dict:
        """Epochs × mini-batches of the rollout batch; returns metrics averaged over steps."""
        c = self.config
        rows = batch.tokens.shape[0]
        per_mini = rows // c.minibatches
        per_micro = per_mini // c.micro_batches
        if per_micro * c.micro_batches * c.minibatches != rows or per_micro % self.batch_split:
            raise ValueError(
                f"{rows} rollout rows do not split into {c.minibatches} mini-batches × "
                f"{c.micro_batches} micro-batches of a multiple of {self.batch_split} rows")
        zeros = np.zeros_like(batch.response_mask)
        arrays = {"tokens": batch.tokens, "attention": batch.attention, "mask": batch.response_mask,
                  "old_logp": experience["old_logp"], "ref_logp": experience["ref_logp"],
                  "advantages": advantages.astype(np.float32),
                  "returns": returns.astype(np.float32),
                  "old_values": experience.get("values", zeros)}
        rng = np.random.default_rng(seed)
        history = []
        for _ in range(c.epochs):
            order = rng.permutation(rows) if c.minibatches > 1 else np.arange(rows)
            for m in range(c.minibatches):
                idx = order[m * per_mini:(m + 1) * per_mini]
                mini = {k: v[idx].reshape(c.micro_batches, per_micro, *v.shape[1:])
                        for k, v in arrays.items()}
                mini = {k: jax.device_put(v, NamedSharding(
                    self.mesh, P(None, sharding_lib.BATCH_AXES, *([None] * (v.ndim - 2)))))
                    for k, v in mini.items()}
                denominator = np.float32(max(batch.response_mask[idx].sum(), 1.0))
                policy_state, critic_state, metrics = self._update_jit(
                    self.policy.state, self.critic.state if self.critic else None, mini,
                    denominator, batch.prompt_width, batch.response_width, train_policy)
                self.policy.state = policy_state
                if self.critic:
                    self.critic.state = critic_state
                history.append(jax.device_get(metrics))
        return _summarise(history)

    def rescale_critic(self, a: float, c: float) -> None:
        """Critic outputs become a·V + c (its head rescaled in place; optimizer state kept)."""
        from prm_jax.rl.critic_init import rescale_head

        model = self.critic.model()
        rescale_head(model, a, c)
        params = jax.device_put(nnx.state(model, nnx.Param), self.critic.sharded.param_shardings)
        self.critic.state = self.critic.state.replace(params=params)

    def policy_params(self) -> nnx.State:
        return self.policy.state.params


def _summarise(history: list[dict]) -> dict:
    """Update metrics over mini-batch steps: means, except the `_max`/`_min` extremes (the
    probability ratio's range over valid tokens), which are the extremes over the steps — and
    1.0 when no step had a valid token (e.g. every response was empty and masked)."""
    out = {}
    for key in history[0]:
        values = [float(h[key]) for h in history]
        if key.endswith(("_max", "_min")):
            finite = [v for v in values if np.isfinite(v)]
            out[key] = (max if key.endswith("_max") else min)(finite) if finite else 1.0
        else:
            out[key] = float(np.mean(values))
    return out
