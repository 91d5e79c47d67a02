"""The default pipeline's stages: SFT → sampling → labelling → PRM training → PRM evaluation.

Each stage reads what the previous ones wrote into the workdir and writes its own outputs, so a
re-run skips finished work: trained models are exported once (a `DONE` marker), training resumes
from orbax checkpoints, the labeller from its labels file.

  workdir/policy/        SFT policy (HF checkpoint + tokenizer)
  workdir/responses.jsonl  sampled responses with their test verdicts
  workdir/labels_binary_search.jsonl, labels_monte_carlo.jsonl, labels_mutation.jsonl
  workdir/prm/           PRM (HF *ForTokenClassification checkpoint)
  workdir/sft/, workdir/prm_training/   checkpoints, metrics.jsonl and TensorBoard of each run
  workdir/prm_lines.png, prm_lines.html   a failing response coloured by PRM line scores
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import logging

from prm_jax import sharding
from prm_jax.data import synthetic
from prm_jax.data.problem import Problem
from prm_jax.eval_stage import sample_and_evaluate
from prm_jax.models import load_pretrained, save_pretrained
from prm_jax.models.factory import model_from_config
from prm_jax.prm import label as label_lib
from prm_jax.prm import metrics as metrics_lib
from prm_jax.prm import mutate
from prm_jax.prm.rollouts import SamplerPolicy, SandboxVerifier
from prm_jax.prm.score import render_html, render_png, score_lines
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.sandbox import SandboxPool
from prm_jax.tokenizer import load_tokenizer
from prm_jax.train.examples import prm_examples, sft_examples
from prm_jax.train.loop import LoopConfig, train

STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")


def _problems(config, split: str, num: int, offset_seed: int = 0):
    d = config.data
    return synthetic.generate(synthetic.SyntheticConfig(
        seed=d.seed + offset_seed, num_problems=num, min_horizon=d.min_horizon,
        max_horizon=d.max_horizon, split=split))


def _loop_config(c) -> LoopConfig:
    return LoopConfig(steps=c.steps, batch_size=c.batch_size, learning_rate=c.learning_rate,
                      warmup_steps=c.warmup_steps, checkpoint_every=c.checkpoint_every,
                      log_every=10)


def _done(path: str) -> bool:
    return os.path.exists(os.path.join(path, "DONE"))


def _mark_done(path: str) -> None:
    with open(os.path.join(path, "DONE"), "w") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%S"))


def _mesh(config):
    return sharding.make_mesh(config.mesh.to_dict())


def _pass_at_1_by_horizon(model, tokenizer, problems, config, mesh) -> dict:
    _, result, _ = sample_and_evaluate(
        Sampler(model, tokenizer, mesh=mesh), problems,
        SamplingConfig(temperature=0.0, max_new_tokens=config.sample.max_new_tokens,
                       stop_strings=STOP), [1])
    summary = result["summary"]
    return {"pass@1": summary["pass@1"], "by_horizon": summary.get("by_horizon", {})}


# ----------------------------------------------------------------------------------- stages
def sft(config, workdir: str) -> dict:
    """Supervised fine-tuning on synthetic references; exports the policy."""
    tokenizer = load_tokenizer(config.tokenizer)
    mesh = _mesh(config)
    policy_dir = os.path.join(workdir, "policy")
    test = _problems(config, "test", config.data.num_test)
    if _done(policy_dir):
        model = load_pretrained(policy_dir)
        result = {"resumed": True}
    else:
        train_problems = _problems(config, "train", config.data.num_train)
        examples, skipped = sft_examples(train_problems, tokenizer, config.sft.seq_len)
        print(f"SFT: {len(examples)} examples ({skipped} longer than {config.sft.seq_len} skipped)")
        model = model_from_config(config, tokenizer, mesh=mesh)

        def snapshot(step, get_model):
            if step in tuple(config.sft.snapshot_steps):
                path = os.path.join(workdir, f"policy_step{step}")
                save_pretrained(get_model(), path, tokenizer=tokenizer)
                _mark_done(path)

        model, result = train(model, examples, loss="next_token", config=_loop_config(config.sft),
                              mesh=mesh, workdir=workdir, name="sft", on_step=snapshot)
        save_pretrained(model, policy_dir, tokenizer=tokenizer)
        _mark_done(policy_dir)
    result["test"] = _pass_at_1_by_horizon(model, tokenizer, test, config, mesh)
    print(f"SFT policy pass@1 on held-out compositions: {result['test']['pass@1']:.3f}")
    return result


def sample(config, workdir: str) -> dict:
    """Responses to the labelling problems from several policy checkpoints (the SFT snapshots,
    `sample.snapshot_n` each, and the final policy, `sample.n`), executed once."""
    path = os.path.join(workdir, "responses.jsonl")
    if os.path.exists(path):
        rows = [json.loads(line) for line in open(path)]
    else:
        tokenizer = load_tokenizer(config.tokenizer)
        mesh = _mesh(config)
        problems = _problems(config, "train", config.sample.num_problems, offset_seed=1000)
        sources = [(f"policy_step{s}", config.sample.snapshot_n) for s in config.sft.snapshot_steps
                   if _done(os.path.join(workdir, f"policy_step{s}"))]
        sources.append(("policy", config.sample.n))
        rows = []
        for index, (name, n) in enumerate(sources):
            if n <= 0:
                continue
            policy = load_pretrained(os.path.join(workdir, name))
            out = Sampler(policy, tokenizer, mesh=mesh).generate(
                [p.prompt for p in problems],
                SamplingConfig(temperature=config.sample.temperature, n=n,
                               max_new_tokens=config.sample.max_new_tokens, stop_strings=STOP),
                seed=config.seed if name == "policy" else config.seed + 1000 + index)
            rows += [{"task_id": problems[i].task_id, "problem": problems[i].to_dict(),
                      "policy": name, "response_id": f"{name}/s{j}", "response": text}
                     for i, j, text in zip(out.prompt_index, out.sample_index, out.texts)]
        with SandboxPool() as pool:
            verdicts = SandboxVerifier(pool).verify(
                [(Problem.from_dict(r["problem"]), r["response"]) for r in rows])
        for row, verdict in zip(rows, verdicts):
            row["passed"] = verdict
        with open(path + ".partial", "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(path + ".partial", path)
    by_policy = {}
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
    return {"responses": len(rows), "pass_rate": rate, "pass_rate_by_policy": rates}


def _responses(workdir: str):
    out = []
    for line in open(os.path.join(workdir, "responses.jsonl")):
        r = json.loads(line)
        if r["passed"] is None:
            continue  # infrastructure error: masked
        out.append(label_lib.Response(Problem.from_dict(r["problem"]), r["response"],
                                      r["response_id"], r["passed"]))
    return out


def label(config, workdir: str) -> dict:
    """Binary-search labels for all responses; per-line MC on a subset; mutation labels."""
    tokenizer = load_tokenizer(config.tokenizer)
    mesh = _mesh(config)
    c = config.label
    policy = load_pretrained(os.path.join(workdir, "policy"))
    rollout = SamplerPolicy(Sampler(policy, tokenizer, mesh=mesh),
                            SamplingConfig(temperature=c.temperature,
                                           max_new_tokens=config.sample.max_new_tokens,
                                           stop_strings=STOP))
    items = _responses(workdir)
    failing_subset = [r for r in items if not r.passed][: c.mc_responses]
    results = {}
    with SandboxPool() as pool:
        verifier = SandboxVerifier(pool)
        for method, subset in (("binary_search", items), ("monte_carlo", failing_subset)):
            path = os.path.join(workdir, f"labels_{method}.jsonl")
            start = time.perf_counter()
            stats = label_lib.label_responses(
                subset, rollout, verifier,
                label_lib.LabelConfig(method=method, k=c.k, wave=c.wave, seed=config.seed,
                                      batch_size=c.batch_size), path,
                progress=lambda done, total, m=method: print(f"  {m}: batch {done}/{total}"))
            stats["seconds"] = time.perf_counter() - start
            results[method] = stats
        correct = [r for r in items if r.passed][: c.mutation_responses]
        path = os.path.join(workdir, "labels_mutation.jsonl")
        if not os.path.exists(path):
            rows = mutate.label_by_mutation(correct, verifier, per_line=c.mutation_per_line,
                                            seed=config.seed)
            with open(path + ".partial", "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
            os.replace(path + ".partial", path)
        results["mutation"] = label_lib.label_statistics(label_lib.read_labels(path))
    results["agreement"] = _agreement(workdir)
    bs = results["binary_search"]
    print(f"labels: {bs['lines']} lines by binary search ({bs['rollouts']} rollouts), MC agreement "
          f"{results['agreement']['line_agreement']:.3f}, MC/BS rollouts per response "
          f"{results['agreement']['rollout_ratio']:.2f}")
    return results


def _agreement(workdir: str) -> dict:
    """Line-label agreement and cost ratio between binary search and MC on the same responses."""
    bs = {r["response_id"]: r for r in label_lib.read_labels(
        os.path.join(workdir, "labels_binary_search.jsonl"))}
    mc = label_lib.read_labels(os.path.join(workdir, "labels_monte_carlo.jsonl"))
    same = total = 0
    bs_cost = mc_cost = bs_exec = mc_exec = 0
    for row in mc:
        other = bs.get(row["response_id"])
        if other is None:
            continue
        for a, b in zip(row["lines"], other["lines"]):
            if a["label"] != 0:
                same += a["label"] == b["label"]
                total += 1
        mc_cost += row["rollouts"]
        bs_cost += other["rollouts"]
        mc_exec += row["executions"]
        bs_exec += other["executions"]
    return {"responses": len(mc), "lines": total, "line_agreement": same / max(total, 1),
            "rollout_ratio": mc_cost / max(bs_cost, 1), "execution_ratio": mc_exec / max(bs_exec, 1),
            "mc_rollouts": mc_cost, "bs_rollouts": bs_cost}


def _split_rows(rows, fraction: float, seed: int):
    tasks = sorted({r["task_id"] for r in rows})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(tasks)[: max(1, int(len(tasks) * fraction))].tolist())
    return [r for r in rows if r["task_id"] not in held], [r for r in rows if r["task_id"] in held]


def prm_train(config, workdir: str) -> dict:
    """PRM initialised from the policy, trained on binary-search labels (held-out tasks kept)."""
    tokenizer = load_tokenizer(config.tokenizer)
    mesh = _mesh(config)
    prm_dir = os.path.join(workdir, "prm")
    rows = label_lib.select(label_lib.read_labels(os.path.join(workdir, "labels_binary_search.jsonl")),
                            config.prm.selection)
    train_rows, _ = _split_rows(rows, config.prm.heldout_fraction, config.seed)
    if _done(prm_dir):
        return {"resumed": True, "train_responses": len(train_rows)}
    examples, skipped = prm_examples(train_rows, tokenizer, config.sft.seq_len)
    print(f"PRM: {len(examples)} training responses ({skipped} skipped)")
    model = load_pretrained(os.path.join(workdir, "policy"), head="scalar", seed=config.seed)
    model, result = train(model, examples, loss=config.prm.loss, config=_loop_config(config.prm),
                          mesh=mesh, workdir=workdir, name="prm_training")
    save_pretrained(model, prm_dir, tokenizer=tokenizer)
    _mark_done(prm_dir)
    return dict(result, train_responses=len(train_rows))


def prm_eval(config, workdir: str) -> dict:
    """PRM vs trivial baselines on held-out tasks' responses; writes the line-score picture."""
    tokenizer = load_tokenizer(config.tokenizer)
    rows = label_lib.select(label_lib.read_labels(os.path.join(workdir, "labels_binary_search.jsonl")),
                            config.prm.selection)
    train_rows, test_rows = _split_rows(rows, config.prm.heldout_fraction, config.seed)
    test_rows = [r for r in test_rows if r["lines"]]
    prm = load_pretrained(os.path.join(workdir, "prm"))
    scores = score_lines(prm, tokenizer, [r["prompt"] for r in test_rows],
                         [r["response"] for r in test_rows])
    labels = [[l["label"] for l in r["lines"]] for r in test_rows]
    train_labels = [[l["label"] for l in r["lines"]] for r in train_rows]
    result = {"heldout_responses": len(test_rows),
              "prm": metrics_lib.line_metrics(scores, labels),
              "baselines": metrics_lib.baseline_metrics(labels, train_labels)}
    # The informative subset: failing responses the policy could have revised (the empty prefix
    # is solvable), where the first error is not simply "the first line".
    revised = [i for i, r in enumerate(test_rows) if not r["passed"] and r["empty_prefix_solvable"]]
    if revised:
        sub_labels = [labels[i] for i in revised]
        result["revised"] = {"responses": len(revised),
                             "prm": metrics_lib.line_metrics([scores[i] for i in revised], sub_labels),
                             "baselines": metrics_lib.baseline_metrics(sub_labels, train_labels)}
    failing = [i for i, r in enumerate(test_rows) if not r["passed"] and 0 < (r["first_error_line"] or 0)]
    if failing:
        i = failing[0]
        title = (f"{test_rows[i]['task_id']}: first error at line {test_rows[i]['first_error_line'] + 1} "
                 f"(binary search)")
        render_png(test_rows[i]["response"], scores[i], os.path.join(workdir, "prm_lines.png"), title)
        with open(os.path.join(workdir, "prm_lines.html"), "w") as f:
            f.write(render_html(test_rows[i]["response"], scores[i], title))
    for name, part in (("all", result), ("revised", result.get("revised"))):
        if part is None:
            continue
        p, b = part["prm"], part["baselines"]
        print(f"PRM held-out ({name}): AUROC {p['auroc']:.3f} (position baseline "
              f"{b['position']['auroc']:.3f}), first-error accuracy {p['first_error_accuracy']:.3f} "
              f"(position {b['position']['first_error_accuracy']:.3f}, majority "
              f"{b['majority']['first_error_accuracy']:.3f})")
    logging.info("prm_eval done")
    return result
