"""Label accuracy against ground truth: methods × K × horizon, with the rollouts each spent.

Takes a workdir of the default pipeline (after `sample`; its policy completes the prefixes),
draws failing responses at random across tasks, labels them by binary search and per-line Monte
Carlo for every K, and compares each row with the synthetic suite's ground truth
(`prm_jax.prm.ground_truth`). Mutation labels (the workdir's labels_mutation.jsonl and
labels_reference_mutation.jsonl, if present) are measured too; they spend no rollouts.

    python experiments/label_accuracy.py --workdir runs/default --responses 48 --ks 1,4,16 \
        --out label_accuracy

writes label_accuracy.json, label_accuracy.md (the table) and label_accuracy.png (first-error
accuracy vs rollouts per response, one curve per method).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np


def _table(results: list[dict]) -> str:
    head = ("| method | K | H | failing responses | rollouts / response | first-error acc. | "
            "line-0 guess | line acc. | constant −1 | κ |\n|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in results:
        a = r["accuracy"]
        rows.append(f"| {r['method']} | {r['k'] or '—'} | {r['horizon']} | {a['failing_responses']} | "
                    f"{a['rollouts_per_response']:.1f} | {a['first_error_accuracy']:.3f} | "
                    f"{a['chance']['first_line_first_error_accuracy']:.3f} | {a['line_accuracy']:.3f} | "
                    f"{a['chance']['constant_bad_line_accuracy']:.3f} | {a['kappa']:.3f} |")
    return head + "\n".join(rows) + "\n"


def _plot(results: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in sorted({r["method"] for r in results}):
        pts = sorted((r["accuracy"]["rollouts_per_response"], r["accuracy"]["first_error_accuracy"])
                     for r in results if r["method"] == method and r["horizon"] == "all")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
    chance = [r["accuracy"]["chance"]["first_line_first_error_accuracy"] for r in results
              if r["horizon"] == "all" and r["k"]]
    if chance:
        ax.axhline(chance[0], color="grey", ls="--", label="first error = line 0")
    ax.set_xscale("symlog")
    ax.set_xlabel("rollouts per failing response")
    ax.set_ylabel("first-error accuracy vs ground truth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _by_horizon(method, k, rows, truths, horizon_of) -> list[dict]:
    from prm_jax.prm.label_accuracy import label_accuracy

    out = [{"method": method, "k": k, "horizon": "all", "accuracy": label_accuracy(rows, truths)}]
    for h in sorted({horizon_of[r["task_id"]] for r in rows}):
        index = [i for i, r in enumerate(rows) if horizon_of[r["task_id"]] == h]
        out.append({"method": method, "k": k, "horizon": h, "accuracy": label_accuracy(
            [rows[i] for i in index], [truths[i] for i in index])})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--responses", type=int, default=48)
    parser.add_argument("--ks", default="1,4,16")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--methods", default="binary_search,monte_carlo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="label_accuracy")
    args = parser.parse_args()

    from prm_jax.data.problem import Problem
    from prm_jax.jsonio import read_jsonl
    from prm_jax.models import load_pretrained
    from prm_jax.prm import ground_truth, label as label_lib
    from prm_jax.prm.rollouts import SamplerPolicy, SandboxVerifier
    from prm_jax.sampling import Sampler, SamplingConfig
    from prm_jax.sandbox import SandboxPool
    from prm_jax.stages.common import STOP
    from prm_jax.tokenizer import load_tokenizer
    from prm_jax.workdir import Workdir

    wd = Workdir(os.path.abspath(args.workdir))
    responses = [label_lib.Response(Problem.from_dict(r["problem"]), r["response"], r["response_id"],
                                    r["passed"])
                 for r in read_jsonl(wd.responses, "responses file") if r["passed"] is False]
    pick = np.random.default_rng([args.seed, 4099]).permutation(len(responses))[: args.responses]
    items = [responses[i] for i in sorted(pick)]
    problems = {r.problem.task_id: r.problem for r in items}
    horizon_of = {t: p.meta["horizon"] for t, p in problems.items()}
    config = json.load(open(wd.config))
    tok = load_tokenizer(config.get("tokenizer") or "builtin")
    policy = SamplerPolicy(Sampler(load_pretrained(wd.policy), tok),
                           SamplingConfig(temperature=args.temperature,
                                          max_new_tokens=config["sample"]["max_new_tokens"],
                                          stop_strings=STOP))
    results = []
    with SandboxPool() as pool, tempfile.TemporaryDirectory() as tmp:
        verifier = SandboxVerifier(pool)
        truths = ground_truth.ground_truth([(r.problem, r.response, False) for r in items], verifier)
        for k in [int(x) for x in args.ks.split(",")]:
            for method in args.methods.split(","):
                path = os.path.join(tmp, f"{method}_{k}.jsonl")
                label_lib.label_responses(items, policy, verifier, label_lib.LabelConfig(
                    method=method, k=k, wave=min(k, 4), seed=args.seed, batch_size=64), path)
                by_key = {r["response_id"]: r for r in label_lib.read_labels(path)}
                rows = [by_key[r.key] for r in items]
                results += _by_horizon(method, k, rows, truths, horizon_of)
                a = results[-1 - len(set(horizon_of.values()))]["accuracy"]
                print(f"{method} K={k}: first error {a['first_error_accuracy']:.3f}, lines "
                      f"{a['line_accuracy']:.3f}, κ {a['kappa']:.3f}, "
                      f"{a['rollouts_per_response']:.1f} rollouts/response", flush=True)
        for name in ("mutation", "reference_mutation"):
            path = wd.labels(name)
            if not os.path.exists(path):
                continue
            rows = [r for r in label_lib.read_labels(path) if not r.get("masked")]
            mutation_problems = dict(problems)
            mutation_problems.update({p.task_id: p for p in _problems_of(wd, rows, config)})
            rows = [r for r in rows if r["task_id"] in mutation_problems]
            mt = ground_truth.ground_truth(
                [(mutation_problems[r["task_id"]], r["response"], r["passed"]) for r in rows], verifier)
            h_of = {t: p.meta["horizon"] for t, p in mutation_problems.items()}
            results += _by_horizon(name, 0, rows, mt, h_of)
    out = {"workdir": wd.root if hasattr(wd, "root") else args.workdir, "responses": len(items),
           "temperature": args.temperature, "results": results}
    with open(args.out + ".json", "w") as f:
        json.dump(out, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(_table(results))
    _plot(results, args.out + ".png")
    print(_table(results))


def _problems_of(wd, rows, config):
    """The problems of mutation rows: the sampled responses' and the reference tasks'."""
    from prm_jax.data import synthetic
    from prm_jax.data.problem import Problem
    from prm_jax.jsonio import read_jsonl
    from prm_jax.stages.label import REFERENCE_SEED_OFFSET

    out = {r["task_id"]: Problem.from_dict(r["problem"]) for r in read_jsonl(wd.responses, "responses")}
    data, n = config["data"], config["label"].get("reference_tasks", 0)
    if n:
        out.update({p.task_id: p for p in synthetic.generate(synthetic.SyntheticConfig(
            seed=data["seed"] + REFERENCE_SEED_OFFSET, num_problems=n,
            min_horizon=data["min_horizon"], max_horizon=data["max_horizon"], split="train",
            split_seed=data["seed"], comment_fraction=data.get("comment_fraction", 0.0)))})
    return list(out.values())


if __name__ == "__main__":
    main()
