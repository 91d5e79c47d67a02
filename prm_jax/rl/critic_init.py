"""Where the critic starts: the PRM (PSGPO's value initialisation) or the policy (baseline).

  "prm"         exact copy of the PRM's backbone and linear head: V(prefix) = PRM(prefix) (a
                PRM's likelihood term is not copied: the critic is a plain value head)
  "prm_affine"  the copy with the head rescaled, V = a·PRM + c (folded into w and b, so the
                critic stays a plain ScalarHeadModel that exports as HF TokenClassification);
                (a, c) given, or fitted by least squares to the first rollout batch's returns
  "prm_fit"     the copy, then (a, c) fitted by least squares to the first rollout batch's
                returns (`PPOLearner.rescale_critic(*fit_affine(...))` in the RL stage)
  "policy"      the SFT policy's backbone with a fresh scalar head (verl/tunix default)

Copies never alias the source (`nnx.clone`); the critic's optimizer state is always fresh.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from prm_jax.models import ScalarHeadModel

CRITIC_INITS = ("prm", "prm_affine", "prm_fit", "policy")


def init_critic(mode: str, *, prm=None, policy=None, affine: tuple[float, float] = (1.0, 0.0),
                seed: int = 0) -> ScalarHeadModel:
    if mode not in CRITIC_INITS:
        raise ValueError(f"critic_init={mode!r}; expected one of {CRITIC_INITS}")
    rngs = nnx.Rngs(params=seed)
    if mode == "policy":
        if policy is None:
            raise ValueError("critic_init='policy' needs the policy")
        return ScalarHeadModel.from_backbone(policy, rngs=rngs, copy_head=False)
    if prm is None:
        raise ValueError(f"critic_init={mode!r} needs a PRM")
    critic = ScalarHeadModel.from_backbone(prm, rngs=rngs, copy_head=True)
    if mode == "prm_affine":
        rescale_head(critic, *affine)
    return critic


def rescale_head(model: ScalarHeadModel, a: float, c: float) -> None:
    """In place: outputs become a·v + c (w ← a·w, b ← a·b + c)."""
    model.score_w[...] = model.score_w[...] * a
    model.score_b[...] = model.score_b[...] * a + c


def fit_affine(values: np.ndarray, returns: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Least-squares (a, c) of returns ≈ a·values + c over the valid tokens (a = 1, c = mean
    residual when the values are constant)."""
    v, r = values[mask > 0].astype(np.float64), returns[mask > 0].astype(np.float64)
    if len(v) < 2 or np.var(v) < 1e-12:
        return 1.0, float(np.mean(r - v)) if len(v) else 0.0
    a = float(np.cov(v, r, bias=True)[0, 1] / np.var(v))
    return a, float(np.mean(r) - a * np.mean(v))
