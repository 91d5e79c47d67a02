"""The PRM evaluation with the policy's own likelihood as the line scorer (an untrained baseline).

Two scorers from a causal LM (the SFT policy), for line k of a response:
  line_sum     log p(line k tokens | prompt, lines < k): the tokens from the one after line
               k−1's reward token through line k's reward token;
  running_min  the least likely response token through line k, min_{s ≤ reward token k}
               log p(x_s | x_<s) — what the PRM's likelihood term reads (`ScalarHeadModel`).

    PYTHONPATH=. python experiments/probe_policy_likelihood.py --policy runs/default/policy \
        [--workdir runs/default]

prints the counterfactual-probe metrics (`prm_jax.prm.probe.probe_metrics`) on the default run's
probe tasks and, with --workdir, the failing-lines report of prm_eval (the same T = 0.8 policy
responses to those tasks, against ground truth) for both scorers. Neither scorer is calibrated
to 0, so threshold figures (first-error and line accuracy) mean little; AUROCs do.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def line_scores(model, tokenizer, prompt: str, response: str) -> dict[str, list[float]]:
    """{"line_sum": [...], "running_min": [...]}, one value per non-blank line."""
    from prm_jax import lines as lines_lib

    enc = lines_lib.encode(tokenizer, prompt, response)
    ids = np.asarray([enc.ids])
    logits = np.asarray(model.forward(ids, np.ones_like(ids, bool)))[0].astype(np.float64)
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    token_lp = [logp[t - 1, enc.ids[t]] for t in range(enc.prompt_len, len(enc.ids))]
    sums, mins, start = [], [], 0
    for r in enc.reward_tokens:
        segment = token_lp[start:r + 1]
        sums.append(float(np.sum(segment)))
        mins.append(float(min(segment)) if segment else 0.0)
        start = max(start, r + 1)
    return {"line_sum": sums, "running_min": [float(x) for x in np.minimum.accumulate(mins)]}


def failing_responses(workdir: str):
    """prm_eval's responses of the run in `workdir` and their ground truth (kept ones only)."""
    from prm_jax import run as run_lib
    from prm_jax.run_config import config_dict_from_workdir
    from prm_jax.stages import prm_eval

    ctx = run_lib.prepare(config_dict_from_workdir(workdir), workdir)
    return prm_eval.judged_responses(ctx, prm_eval.probe_problems(ctx.config))[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True)
    parser.add_argument("--workdir", default="", help="also score this run's prm_eval responses")
    parser.add_argument("--seed", type=int, default=0, help="data.seed of the run")
    parser.add_argument("--problems", type=int, default=96, help="prm.probe_problems")
    parser.add_argument("--max_horizon", type=int, default=4)
    parser.add_argument("--comment_fraction", type=float, default=0.15)
    args = parser.parse_args()

    from prm_jax.data import synthetic
    from prm_jax.models import load_pretrained
    from prm_jax.models.sharded import ShardedModel
    from prm_jax.prm import metrics, probe
    from prm_jax.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("builtin")
    model = ShardedModel(load_pretrained(args.policy))
    problems = synthetic.generate(synthetic.SyntheticConfig(
        seed=args.seed, num_problems=args.problems, max_horizon=args.max_horizon, split="test",
        comment_fraction=args.comment_fraction))
    pairs = probe.make_pairs(problems, seed=args.seed)
    right = [line_scores(model, tokenizer, p.prompt, p.right) for p in pairs]
    wrong = [line_scores(model, tokenizer, p.prompt, p.wrong) for p in pairs]
    kept = failing_responses(args.workdir) if args.workdir else []
    out = {}
    for scorer in ("line_sum", "running_min"):
        result = probe.probe_metrics(pairs, [r[scorer] for r in right], [w[scorer] for w in wrong])
        out[scorer] = {"probe": {k: result[k] for k in ("pairs", "pair_accuracy", "pair_auroc",
                                                        "program_auroc", "by_kind", "by_horizon")}}
        if kept:
            scores = [line_scores(model, tokenizer, p.prompt, r)[scorer] for (p, r), _ in kept]
            report = metrics.failing_line_report(
                scores, [list(t.labels) for _, t in kept], [t.passed for _, t in kept],
                [p.meta["horizon"] for (p, _), _ in kept], [p.task_id for (p, _), _ in kept])
            out[scorer]["failing_responses"] = report["failing"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
