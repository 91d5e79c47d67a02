"""The counterfactual probe with the policy's own likelihood as the line scorer.

Scores line k by log p(line k tokens | prompt, lines < k) under a causal LM (the SFT policy):
the tokens from the one after line k−1's reward token through line k's reward token. Shows
how much of "is this line right?" the backbone already knows, beside what the PRM recovers.

    PYTHONPATH=. python experiments/probe_policy_likelihood.py --policy runs/default/policy

prints the probe metrics (`prm_jax.prm.probe.probe_metrics`) on the default run's probe tasks.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def line_logprobs(model, tokenizer, prompt: str, response: str) -> list[float]:
    """Σ log p(token) over each line's tokens (see module docstring)."""
    from prm_jax import lines as lines_lib

    enc = lines_lib.encode(tokenizer, prompt, response)
    ids = np.asarray([enc.ids])
    logits = np.asarray(model.forward(ids, np.ones_like(ids, bool)))[0].astype(np.float64)
    top = logits.max(-1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    token_lp = [logp[t - 1, enc.ids[t]] for t in range(enc.prompt_len, len(enc.ids))]
    out, start = [], 0
    for r in enc.reward_tokens:
        out.append(float(np.sum(token_lp[start:r + 1])))
        start = max(start, r + 1)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True)
    parser.add_argument("--seed", type=int, default=0, help="data.seed of the run")
    parser.add_argument("--problems", type=int, default=96, help="prm.probe_problems")
    parser.add_argument("--max_horizon", type=int, default=4)
    parser.add_argument("--comment_fraction", type=float, default=0.15)
    args = parser.parse_args()

    from prm_jax.data import synthetic
    from prm_jax.models import load_pretrained
    from prm_jax.models.sharded import ShardedModel
    from prm_jax.prm import probe
    from prm_jax.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("builtin")
    model = ShardedModel(load_pretrained(args.policy))
    problems = synthetic.generate(synthetic.SyntheticConfig(
        seed=args.seed, num_problems=args.problems, max_horizon=args.max_horizon, split="test",
        comment_fraction=args.comment_fraction))
    pairs = probe.make_pairs(problems, seed=args.seed)
    right = [line_logprobs(model, tokenizer, p.prompt, p.right) for p in pairs]
    wrong = [line_logprobs(model, tokenizer, p.prompt, p.wrong) for p in pairs]
    result = probe.probe_metrics(pairs, right, wrong)
    print(json.dumps({k: result[k] for k in ("pairs", "pair_accuracy", "program_auroc", "by_kind",
                                              "by_horizon")}, indent=1))


if __name__ == "__main__":
    main()
