"""What an RL iteration logs: outcome, dense-reward, reward-hacking, KL and critic health figures.

Reward-hacking watch (PSGPO reports padding with lines and with comments): code lines per
response, comment-line and duplicate-line fractions, tokens per response.
"""

from __future__ import annotations

import numpy as np

from prm_jax.rl import algos
from prm_jax.rl.rollout import MASK_EMPTY, MASK_INFRA, MASK_TRUNCATED, RolloutBatch


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0


def shape_metrics(texts) -> dict:
    """Per-response line statistics (means over responses)."""
    code, comment_frac, dup_frac, lines_all = [], [], [], []
    for text in texts:
        lines = [l.strip() for l in text.split("\n") if l.strip()]
        comments = [l for l in lines if l.startswith("#")]
        codes = [l for l in lines if not l.startswith("#")]
        lines_all.append(len(lines))
        code.append(len(codes))
        comment_frac.append(len(comments) / len(lines) if lines else 0.0)
        dup_frac.append(1 - len(set(codes)) / len(codes) if codes else 0.0)
    return {"shape/code_lines": _mean(code), "shape/lines": _mean(lines_all),
            "shape/comment_fraction": _mean(comment_frac), "shape/duplicate_line_fraction": _mean(dup_frac)}


def rollout_metrics(batch: RolloutBatch, parts: dict, experience: dict, advantages, returns,
                    kl_reward) -> dict:
    rows = range(batch.size)
    scored = [r for r in rows if batch.mask_reason[r] is None]
    passed = [r for r in scored if batch.passed[r]]
    failed = [r for r in scored if not batch.passed[r]]
    mask = batch.response_mask
    dense_sum = parts["dense"].sum(-1)
    out = {
        "rollout/pass_rate": len(passed) / max(len(scored), 1),
        "rollout/samples": batch.size,
        "rollout/masked_infrastructure": sum(batch.mask_reason[r] == MASK_INFRA for r in rows) / batch.size,
        "rollout/masked_empty": sum(batch.mask_reason[r] == MASK_EMPTY for r in rows) / batch.size,
        "rollout/masked_truncated": sum(batch.mask_reason[r] == MASK_TRUNCATED for r in rows) / batch.size,
        "rollout/truncation_rate": sum(batch.stop_reasons[r] == "length" for r in rows) / batch.size,
        "rollout/response_tokens": _mean(len(batch.response_ids[r]) for r in rows),
        "reward/outcome_mean": _mean(parts["outcome"][r].sum() for r in scored),
        "reward/dense_sum_passing": _mean(dense_sum[r] for r in passed),
        "reward/dense_sum_failing": _mean(dense_sum[r] for r in failed),
        "reward/total_mean": _mean((parts["outcome"][r] + parts["dense"][r] + kl_reward[r]).sum()
                                   for r in scored),
        "kl/k1": float(algos.masked_mean(algos.kl_penalty(experience["old_logp"], experience["ref_logp"], "k1"), mask)),
        "kl/k3": float(algos.masked_mean(algos.kl_penalty(experience["old_logp"], experience["ref_logp"], "k3"), mask)),
        "policy/entropy": float(algos.masked_mean(experience["entropy"], mask)),
        "advantage/mean": float(algos.masked_mean(advantages, mask)),
        "advantage/abs_max": float(np.abs(advantages * mask).max()) if mask.any() else 0.0,
        "sampler/logprob_mismatch_max": float(np.abs((experience["old_logp"] - batch.sampler_logprobs) * mask).max())
        if mask.any() else 0.0,
    }
    if "values" in experience:
        out["critic/explained_variance"] = float(algos.explained_variance(experience["values"], returns, mask))
        out["critic/values_mean"] = float(algos.masked_mean(experience["values"], mask))
        out["critic/returns_mean"] = float(algos.masked_mean(returns, mask))
    if "prm" in experience:
        scores = [float(experience["prm"][r, t]) for r in scored for t in batch.reward_tokens[r]]
        out["prm/line_score_mean"] = _mean(scores)
        out["prm/negative_line_fraction"] = _mean(s < 0 for s in scores)
    out.update(shape_metrics([batch.texts[r] for r in scored]))
    return out
