"""The PSGPO experiment grid: RL arms × seeds on one finished pipeline run, with bootstrap
confidence intervals, paired differences against outcome-only PPO, breakdowns by horizon and
response length, reward-hacking indicators, cost, plots and a table.

  make run                                                     # the pipeline: SFT policy, PRM
  python experiments/psgpo_grid.py --workdir runs/default --grid key --out experiments/results/psgpo_key
  python experiments/psgpo_grid.py --workdir runs/default --grid arms --out experiments/results/psgpo_arms

Every arm × seed is a named RL run in the workdir (`configs/rl_ppo.py:<base arm>,<workdir>` with
`rl.name=<arm>_s<seed>`, `rl.seed=<seed>` and the arm's overrides): the SFT policy, the PRM and the
held-out problems are the run's own, so seeds differ only in prompt order, sampling and update
shuffles, and seed s of every arm sees the same prompts with the same sampling seeds (arms are
compared paired, seed by seed and problem by problem). Resumable: a run already in the workdir's
summary.json is reused, so an interrupted grid continues where it stopped.

Grids (`--grid`, or `--arms` and `--seeds` explicitly):
  key     sparse, psgpo × seeds 0–4 (the key contrast)
  arms    every arm of configs/rl_ppo.py × seeds 0–2
  lambda  psgpo with the dense reward's failing-line weight λ_fail ∈ {0.1, 0.25 (default), 0.5}
          × seeds 0–2, beside sparse
  k       psgpo with PRMs trained on labels drawn with best-of-K completions, K ∈ {1, 4
          (the pipeline's), 16} × seeds 0–2, beside sparse (each K relabels once, in its PRM
          variant's workdir)
  prm_data  psgpo with PRMs trained on other label data — binary-search labels, all vs
          "revised only" (the paper's ablation), and ground-truth labels (an upper bound) — beside
          psgpo (the pipeline's PRM) and sparse, × seeds 0–2. Each such PRM is trained once, in
          <workdir>/prm_variants/<name>/, a workdir linking the pipeline's policy and labels.
"sft" (the SFT policy, every run's starting point) is always reported; it has no seeds. Every
arm is compared with it on the same problems (Δ vs SFT) and with `sparse` (Δ vs sparse).

Writes to --out: results.csv (one row per arm × seed: config, seed, pass@1 before/after, by
horizon, cost, hacking indicators), results.json (everything, with the per-problem outcomes),
table.md (with --pass_at_k N also pass_at_k.md: sampled pass@1, pass@N/2 and pass@N per arm,
with intervals and paired differences), and the plots pass_at_1_curves.png (held-out pass@1 vs iteration, mean over seeds),
pass_at_1_by_horizon.png (with 95% intervals), hacking.png (lines per response, comment and
duplicate-line fractions, response tokens over iterations) and, when the workdir's label stage
drew it, labelling_cost_vs_accuracy.png. Intervals: two-way (seeds × problems) percentile
bootstrap (`prm_jax/grid_stats.py`).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from prm_jax import grid_stats, plots  # noqa: E402

RL_ARMS = ("sparse", "dense", "value", "psgpo", "grpo", "grpo_process", "rloo", "rloo_process")
PRM_ARMS = {"dense", "value", "psgpo", "grpo_process", "rloo_process"}
# PRMs trained on other label data than the pipeline's (`prm` section overrides). Each is
# trained once in <workdir>/prm_variants/<name>/, a workdir that links the pipeline's SFT
# policy, labelling policy, responses and label files, and holds its own PRM and RL runs.
PRM_VARIANTS = {
    "oracle": {"prm.label_sources": ("oracle",)},  # ground-truth labels: an upper bound only
    "bs_full": {"prm.label_sources": ("binary_search",), "prm.selection": "full"},
    "bs_revised": {"prm.label_sources": ("binary_search",), "prm.selection": "revised_only"},
    # K sensitivity: the pipeline's PRM recipe on binary-search and MC labels drawn with best-of-K
    # completions for another K (the variant relabels; mutation labels do not depend on K).
    "k1": {"label.k": 1, "label.wave": 1},  # a wave of K completions per probe at most
    "k16": {"label.k": 16},
}
# Label files a relabelling variant (one that sets `label.*`) draws itself instead of linking.
RELABELLED = ("labels_binary_search.jsonl", "labels_monte_carlo.jsonl", "labels_ground_truth.jsonl")
# Named arms: name -> (configs/rl_ppo.py arm, RL config overrides, PRM variant or None).
VARIANTS = {arm: (arm, {}, None) for arm in RL_ARMS}
VARIANTS.update({
    "psgpo_lambda0p1": ("psgpo", {"rl.lambda_fail": 0.1}, None),
    "psgpo_lambda0p5": ("psgpo", {"rl.lambda_fail": 0.5}, None),
    **{f"psgpo_prm_{v}": ("psgpo", {}, v) for v in PRM_VARIANTS},
})
GRIDS = {
    "key": (["sparse", "psgpo"], [0, 1, 2, 3, 4]),
    "arms": (list(RL_ARMS), [0, 1, 2]),
    "lambda": (["sparse", "psgpo_lambda0p1", "psgpo", "psgpo_lambda0p5"], [0, 1, 2]),
    "k": (["sparse", "psgpo_prm_k1", "psgpo", "psgpo_prm_k16"], [0, 1, 2]),
    "prm_data": (["sparse", "psgpo", "psgpo_prm_bs_full", "psgpo_prm_bs_revised",
                  "psgpo_prm_oracle"], [0, 1, 2]),
}
# Files of a pipeline run that a PRM variant's workdir links to.
PRM_VARIANT_LINKS = ("policy", "responses.jsonl")
BASELINE = "sparse"
HACKING = (("shape/lines", "lines per response"), ("shape/comment_fraction", "comment-line fraction"),
           ("shape/duplicate_line_fraction", "duplicate-line fraction"),
           ("rollout/response_tokens", "response tokens"))
LAST_ITERATIONS = 5  # hacking indicators: mean over this many final iterations


def run_name(arm: str, seed: int) -> str:
    return f"{arm}_s{seed}"


assert all(name.replace("_", "").isalnum() for name in VARIANTS), "run names: letters, digits, _"


def read_summary(workdir: str) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def arm_workdir(workdir: str, arm: str) -> str:
    """Where arm's runs live: the pipeline's workdir, or its PRM variant's."""
    variant = VARIANTS[arm][2]
    return os.path.join(workdir, "prm_variants", variant) if variant else workdir


def _launch(args: list[str], what: str) -> float:
    print("running", " ".join(args), flush=True)
    start = time.perf_counter()
    if subprocess.run([sys.executable, "-m", "prm_jax.main", *args], cwd=ROOT).returncode != 0:
        raise SystemExit(f"{what} failed (its error is printed above); finished runs are kept, "
                         "run the same command again to continue")
    return time.perf_counter() - start


def _flag_value(value) -> str:
    """A config flag's value: strings as they are, tuples and numbers as Python literals."""
    return value if isinstance(value, str) else repr(value)


def relabels(variant: str | None) -> bool:
    """Whether a PRM variant draws its own labels (it changes a `label` setting)."""
    return any(k.startswith("label.") for k in PRM_VARIANTS.get(variant, {}))


def ensure_prm_variant(workdir: str, variant: str, extra: list[str]) -> float | None:
    """Trains (and evaluates) the PRM of `variant` in its own workdir unless it is there; a
    variant that changes a `label` setting first relabels the pipeline's responses (binary
    search, MC and their ground truth; the mutation files are linked)."""
    root = os.path.join(workdir, "prm_variants", variant)
    if os.path.exists(os.path.join(root, "prm", "DONE")):
        return None
    os.makedirs(root, exist_ok=True)
    links = list(PRM_VARIANT_LINKS) + [
        n for n in os.listdir(workdir)
        if (n.startswith("labels_") and not (relabels(variant) and n in RELABELLED))
        or n.startswith("policy_rl_baseline")]
    for name in links:
        target, link = os.path.join(workdir, name), os.path.join(root, name)
        if os.path.exists(target) and not os.path.lexists(link):
            os.symlink(os.path.relpath(target, root), link)  # relative: the workdir may move
    return _launch([f"--config=configs/rl_ppo.py:psgpo,{workdir}", f"--workdir={root}",
                    "--config.stages=('label', 'prm_train', 'prm_eval')" if relabels(variant)
                    else "--config.stages=('prm_train', 'prm_eval')", *_prm_flags(variant),
                    *(f"--config.{o}" for o in extra)], f"PRM variant {variant}")


def _prm_flags(variant: str | None) -> list[str]:
    return [f"--config.{k}={_flag_value(v)}" for k, v in PRM_VARIANTS.get(variant, {}).items()]


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _check_settings(root: str, name: str, expected: dict) -> None:
    """A finished run is reused only if it was made with the RL settings asked for now."""
    path = os.path.join(root, name, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        stored = json.load(f)
    def normal(value):  # JSON stores tuples as lists
        return list(value) if isinstance(value, (list, tuple)) else value

    differences = [f"rl.{k}: stored {stored[k]!r}, asked {v!r}" for k, v in expected.items()
                   if k in stored and normal(stored[k]) != normal(v)]
    if differences:
        raise SystemExit(f"run {name} in {root} was made with other settings ({'; '.join(differences)}); "
                         "use a fresh workdir (a copy of the pipeline run) for these settings")


def ensure_run(workdir: str, arm: str, seed: int, extra: list[str]) -> float | None:
    """Runs arm × seed unless its workdir already holds it (with the same RL settings); returns
    the wall seconds spent (a PRM variant's training included), or None if it was there."""
    name = run_name(arm, seed)
    base, overrides, variant = VARIANTS[arm]
    root = arm_workdir(workdir, arm)
    spent = ensure_prm_variant(workdir, variant, extra) if variant else None
    expected = {"seed": seed, **{k.split(".", 1)[1]: v for k, v in overrides.items()}}
    for item in extra:
        key, _, value = item.partition("=")
        if key.startswith("rl."):
            expected[key.split(".", 1)[1]] = _parse_value(value)
    _check_settings(root, name, expected)
    if os.path.exists(os.path.join(root, "summary.json")) and name in read_summary(root):
        return spent
    # The pipeline's own config (its `rl` section too) is the base for every arm, also for one
    # whose PRM lives in a variant workdir: arms differ only in what they name.
    seconds = _launch([f"--config=configs/rl_ppo.py:{base},{workdir}", f"--workdir={root}",
                       f"--config.rl.name={name}", f"--config.rl.seed={seed}",
                       *(f"--config.{k}={_flag_value(v)}" for k, v in overrides.items()),
                       *_prm_flags(variant), *(f"--config.{o}" for o in extra)], f"RL run {name}")
    return seconds + (spent or 0.0)


def _read_eval(path: str, name: str, root: str) -> dict:
    evaluation = None
    if os.path.exists(path):
        with open(path) as f:
            evaluation = json.load(f)
    if not evaluation or "problems" not in evaluation:
        raise SystemExit(f"{path} has no per-problem outcomes: run {name} predates them; delete "
                         f"{os.path.join(root, name)} and {os.path.join(root, 'policy_' + name)}* "
                         "and its entry in summary.json (or use a fresh workdir), then run the grid again")
    return evaluation


def _metrics(path: str) -> dict[str, list[tuple[int, float]]]:
    """{metric name without the run prefix: [(step, value), ...]} of a run's metrics.jsonl."""
    _, series = plots.read_series(path)
    return {name: [(int(s), float(v)) for s, v in zip(steps, values)]
            for name, (steps, values) in series.items()}


def collect_run(workdir: str, arm: str, seed: int, extra: list[str] = ()) -> dict:
    """One arm × seed: its figures, per-problem outcomes, curves and hacking indicators."""
    name = run_name(arm, seed)
    root = arm_workdir(workdir, arm)
    run_dir = os.path.join(root, name)
    result = read_summary(root)[name]
    after = _read_eval(os.path.join(run_dir, "eval_after.json"), name, root)
    before = _read_eval(os.path.join(run_dir, "eval_before.json"), name, root)
    series = _metrics(os.path.join(run_dir, "metrics.jsonl"))
    hacking = {}
    for key, _ in HACKING:
        values = [v for _, v in series.get(key, [])][-LAST_ITERATIONS:]
        hacking[key] = float(np.mean(values)) if values else float("nan")
    base, overrides, variant = VARIANTS[arm]
    prm_overrides = PRM_VARIANTS.get(variant, {})
    where = f"<workdir>/prm_variants/{variant}" if variant else "<workdir>"
    return {"arm": arm, "base_arm": base, "overrides": {**overrides, **prm_overrides},
            "seed": seed, "run": name, "workdir": root,
            "config": f"configs/rl_ppo.py:{base},<workdir> --workdir={where} rl.name={name} "
                      f"rl.seed={seed}"
                      + "".join(f" {k}={v}" for k, v in {**overrides, **prm_overrides}.items())
                      + "".join(f" {o}" for o in extra),
            "pass@1": after["pass@1"], "pass@1_before": before["pass@1"],
            "by_horizon": {h: v["pass_rate"] for h, v in after["by_horizon"].items()},
            "problems_after": after["problems"], "problems_before": before["problems"],
            "seconds": result.get("seconds"), "iterations": result.get("iterations"),
            "curve": series.get("eval/pass@1", []), "hacking": hacking,
            "hacking_curves": {key: series.get(key, []) for key, _ in HACKING}}


def sampled_eval_path(run_dir: str, n: int, temperature: float) -> str:
    return os.path.join(run_dir, f"eval_sampled_n{n}_t{temperature:g}.json")


_CONTEXT = {}
# One sampling seed for every policy: arms are compared on common random numbers. The SFT row
# is one such draw, so a "vs SFT" interval covers problems and the arm's seeds, not the SFT
# policy's own sampling noise beyond what the problem bootstrap carries.
SAMPLED_EVAL_SEED = 0


def ensure_sampled_eval(workdir: str, root: str, name: str | None, n: int,
                        temperature: float) -> dict:
    """Sampled pass@k (k = 1..n) of a run's final policy on the pipeline's held-out problems
    (`name` None: the SFT policy, kept in <workdir>/sft), by `common.sampled_pass_at_k` with
    seed 0 for every policy (paired draws) and the pipeline's response budget; computed once
    and kept beside the run's greedy evaluation."""
    from prm_jax.jsonio import write_json_atomic

    from prm_jax import run as run_lib
    from prm_jax.run_config import config_dict_from_workdir

    if workdir not in _CONTEXT:
        _CONTEXT[workdir] = run_lib.prepare(config_dict_from_workdir(workdir), workdir)
    ctx = _CONTEXT[workdir]
    run_dir = os.path.join(root, name) if name else os.path.join(workdir, "sft")
    policy = os.path.join(root, f"policy_{name}") if name else ctx.workdir.policy
    # What the evaluation depends on; a kept file made with other settings is made again.
    settings = {"policy": os.path.relpath(policy, workdir), "n": n, "temperature": temperature,
                "seed": SAMPLED_EVAL_SEED, "max_new_tokens": ctx.config.sample.max_new_tokens,
                "num_test": ctx.config.data.num_test}
    path = sampled_eval_path(run_dir, n, temperature)
    if os.path.exists(path):
        with open(path) as f:
            kept = json.load(f)
        if kept.get("settings") == settings:
            return kept
    from prm_jax.models.factory import load_run_model
    from prm_jax.stages import common

    start = time.perf_counter()
    result = common.sampled_pass_at_k(
        load_run_model(ctx.config, policy), ctx.tokenizer,
        common.problems(ctx.config, "test", ctx.config.data.num_test), n=n,
        temperature=temperature, max_new_tokens=settings["max_new_tokens"], mesh_=ctx.mesh,
        seed=SAMPLED_EVAL_SEED)
    result.update(settings=settings, seconds=time.perf_counter() - start)
    print(f"sampled pass@k of {name or 'sft'}: pass@1 {result.get('pass@1', float('nan')):.3f}, "
          f"pass@{n} {result.get(f'pass@{n}', float('nan')):.3f} ({result['seconds']:.0f} s)",
          flush=True)
    write_json_atomic(path, result)
    return result


def pass_at_k_matrix(evaluations: list[dict], k: int, ids: list[str]) -> np.ndarray:
    """Unbiased pass@k [seed, problem] of sampled evaluations (NaN where fewer than k samples
    were scorable)."""
    from prm_jax.evaluate import pass_at_k

    rows = []
    for evaluation in evaluations:
        if [p["task_id"] for p in evaluation["problems"]] != ids:
            raise SystemExit("a sampled evaluation covers other held-out problems, or another "
                             "order, than the greedy ones: the runs do not come from one "
                             "pipeline run")
        rows.append([pass_at_k(p["n"], p["correct"], k) if p["n"] >= k else np.nan
                     for p in evaluation["problems"]])
    return np.asarray(rows, dtype=np.float64)


def analyse_pass_at_k(sft_eval: dict, evals_by_arm: dict[str, list[dict]], ks: list[int],
                      subsets: dict[str, np.ndarray], ids: list[str]) -> dict:
    """Per arm and k: sampled pass@k with its two-way bootstrap interval (seeds × problems),
    overall and per subset (column indices into `ids`, the greedy evaluations' problem order),
    and the paired difference against SFT (one draw: see SAMPLED_EVAL_SEED) and `BASELINE`."""
    report = {"n": sft_eval["n"], "temperature": sft_eval["temperature"], "ks": ks, "arms": {}}
    sft = {k: pass_at_k_matrix([sft_eval], k, ids) for k in ks}
    report["arms"]["sft"] = {f"pass@{k}": subset_cis(sft[k], subsets) for k in ks}
    matrices = {arm: {k: pass_at_k_matrix(evals, k, ids) for k in ks}
                for arm, evals in evals_by_arm.items()}
    for arm, by_k in matrices.items():
        entry = {}
        for k, m in by_k.items():
            entry[f"pass@{k}"] = subset_cis(m, subsets)
            entry[f"pass@{k}_vs_sft"] = _ci_dict(grid_stats.paired_difference_ci(
                m, np.repeat(sft[k], len(m), axis=0)))
            if arm != BASELINE and BASELINE in matrices:
                entry[f"pass@{k}_vs_{BASELINE}"] = _ci_dict(
                    grid_stats.paired_difference_ci(m, matrices[BASELINE][k]))
        report["arms"][arm] = entry
    return report


def write_pass_at_k_table(report: dict, out: str) -> str:
    ks = report["ks"]
    lines = [f"Held-out sampled pass@k ({report['n']} samples per problem at temperature "
             f"{report['temperature']:g}, unbiased estimator; the same random numbers for every "
             "policy); mean [95% two-way bootstrap interval over seeds × problems].", "",
             "| arm | " + " | ".join(f"pass@{k}" for k in ks)
             + " | " + " | ".join(f"Δ pass@{k} vs SFT" for k in ks)
             + " | " + " | ".join(f"Δ pass@{k} vs {BASELINE}" for k in ks) + " |",
             "|---" * (1 + 3 * len(ks)) + "|"]
    for arm, entry in report["arms"].items():
        cells = [_fmt(entry[f"pass@{k}"]["all"]) for k in ks]
        cells += [_fmt(entry[f"pass@{k}_vs_sft"]) if f"pass@{k}_vs_sft" in entry else "–" for k in ks]
        cells += [_fmt(entry[f"pass@{k}_vs_{BASELINE}"]) if f"pass@{k}_vs_{BASELINE}" in entry
                  else "–" for k in ks]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    horizons = [s for s in next(iter(report["arms"].values()))[f"pass@{ks[-1]}"] if s.startswith("H=")]
    if horizons:
        lines += ["", f"pass@{ks[-1]} by horizon:", "",
                  "| arm | " + " | ".join(horizons) + " |", "|---" * (1 + len(horizons)) + "|"]
        for arm, entry in report["arms"].items():
            lines.append(f"| {arm} | " + " | ".join(_fmt(entry[f"pass@{ks[-1]}"][h]) for h in horizons)
                         + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "pass_at_k.md"), "w") as f:
        f.write(text)
    return text


def _matrix(runs: list[dict], key: str) -> np.ndarray:
    """passed[seed, problem] of `runs` (NaN where the sandbox could not score)."""
    return np.asarray([[np.nan if p["passed"] is None else p["passed"] for p in r[key]]
                       for r in runs], dtype=np.float64)


def subset_cis(matrix: np.ndarray, subsets: dict[str, np.ndarray]) -> dict:
    """{subset: mean and two-way bootstrap interval of matrix[:, subset's problem columns]}."""
    return {name: _ci_dict(grid_stats.bootstrap_ci(matrix[:, cols])) for name, cols in subsets.items()}


def _ci_dict(mean_low_high) -> dict:
    mean, low, high = mean_low_high
    return {"mean": mean, "low": low, "high": high}


def analyse(runs_by_arm: dict[str, list[dict]], seeds: list[int]) -> dict:
    """Per arm: pass@1 with its two-way bootstrap interval overall, by horizon and by response
    length; the paired difference against `BASELINE`; per-seed t-intervals; hacking and cost."""
    first = next(iter(runs_by_arm.values()))[0]
    problems = first["problems_before"]
    ids = [p["task_id"] for p in problems]
    for runs in runs_by_arm.values():
        for r in runs:
            if [p["task_id"] for p in r["problems_after"]] != ids:
                raise SystemExit(f"{r['run']} was evaluated on other held-out problems than "
                                 f"{first['run']}: the runs do not come from one pipeline run")
    horizons = np.asarray([p["horizon"] for p in problems])
    sft_tokens = np.asarray([p["tokens"] or 0 for p in problems])
    median = float(np.median(sft_tokens))
    subsets = {"all": np.arange(len(ids))}
    subsets.update({f"H={h}": np.flatnonzero(horizons == h) for h in sorted(set(horizons.tolist()))})
    subsets[f"SFT response ≤ {median:g} tokens"] = np.flatnonzero(sft_tokens <= median)
    subsets[f"SFT response > {median:g} tokens"] = np.flatnonzero(sft_tokens > median)
    subsets = {k: v for k, v in subsets.items() if len(v)}

    sft = _matrix([first], "problems_before")
    outcomes = {arm: _matrix(runs, "problems_after") for arm, runs in runs_by_arm.items()}
    report = {"problems": len(ids), "seeds": seeds, "subsets": {k: len(v) for k, v in subsets.items()},
              "subset_columns": {k: v.tolist() for k, v in subsets.items()}, "task_ids": ids,
              "arms": {"sft": {"subsets": subset_cis(sft, subsets)}}}
    for arm, runs in runs_by_arm.items():
        entry = {"subsets": subset_cis(outcomes[arm], subsets), "per_seed": [r["pass@1"] for r in runs]}
        mean, half = grid_stats.t_interval(entry["per_seed"])
        entry["t_interval"] = {"mean": mean, "half_width": half}
        # Did RL move the policy? The SFT policy is deterministic (greedy), so its row repeats
        # over seeds and the paired bootstrap resamples problems (and this arm's seeds).
        entry["vs_sft"] = {name: _ci_dict(grid_stats.paired_difference_ci(
            outcomes[arm][:, cols], np.repeat(sft[:, cols], len(runs), axis=0)))
            for name, cols in subsets.items()}
        gains = [r["pass@1"] - r["pass@1_before"] for r in runs]
        mean, half = grid_stats.t_interval(gains)
        entry["gain_over_sft_t_interval"] = {"per_seed": gains, "mean": mean, "half_width": half}
        if arm != BASELINE and BASELINE in runs_by_arm:
            entry["vs_" + BASELINE] = {
                name: _ci_dict(grid_stats.paired_difference_ci(outcomes[arm][:, cols],
                                                               outcomes[BASELINE][:, cols]))
                for name, cols in subsets.items()}
            diffs = [a["pass@1"] - b["pass@1"] for a, b in zip(runs, runs_by_arm[BASELINE])]
            sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
            entry["power"] = {"per_seed_differences": diffs, "sd": sd,
                              "minimum_detectable_effect": grid_stats.minimum_detectable_effect(sd, len(diffs)),
                              "seeds_for_0.05": (grid_stats.seeds_needed(sd, 0.05)
                                                 if np.isfinite(sd) and sd > 0 else None)}
        entry["hacking"] = {k: float(np.nanmean([r["hacking"][k] for r in runs])) for k, _ in HACKING}
        entry["rl_seconds"] = float(np.mean([np.nan if r["seconds"] is None else r["seconds"]
                                             for r in runs]))
        report["arms"][arm] = entry
    sft_rate = report["arms"]["sft"]["subsets"]["all"]["mean"]
    report["binomial_se_one_run"] = float(np.sqrt(sft_rate * (1 - sft_rate) / len(ids)))
    return report


def _fmt(ci: dict) -> str:
    return f"{ci['mean']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def _prm_text(prm: dict) -> str:
    if not prm:
        return "– | – | –"
    figures = [prm.get("probe_pair_accuracy"), prm.get("probe_pair_auroc")]
    quality = " / ".join(f"{v:.2f}" for v in figures if v is not None) or "–"
    sources = "+".join(prm["label_sources"]) + (f" ({prm['selection']})" if prm.get("selection") else "")
    return f"{sources} | {prm['labelling_rollouts']} | {quality}"


def write_table(report: dict, out: str) -> str:
    subsets = list(report["subsets"])
    lines = [f"Held-out greedy pass@1 on {report['problems']} problems, seeds {report['seeds']}; "
             "mean [95% two-way bootstrap interval over seeds × problems]. PRM columns: its label "
             "sources, the completions labelling them cost, and its probe pair accuracy / AUROC "
             "(right vs wrong line; chance 0.5).", "",
             "| arm | " + " | ".join(f"{s} (n={report['subsets'][s]})" for s in subsets)
             + f" | Δ vs SFT (all) | Δ vs {BASELINE} (all) | RL s/run | PRM labels | labelling rollouts | PRM probe |",
             "|---" * (len(subsets) + 7) + "|"]
    for arm, entry in report["arms"].items():
        delta = entry.get("vs_" + BASELINE, {}).get("all")
        gain = entry.get("vs_sft", {}).get("all")
        lines.append(f"| {arm} | " + " | ".join(_fmt(entry["subsets"][s]) for s in subsets)
                     + f" | {_fmt(gain) if gain else '–'}"
                     + f" | {_fmt(delta) if delta else '–'}"
                     + (f" | {entry['rl_seconds']:.0f}" if "rl_seconds" in entry else " | –")
                     + f" | {_prm_text(entry.get('prm', {}))} |")
    lines.append("")
    for arm, entry in report["arms"].items():
        if "power" in entry:
            p = entry["power"]
            lines.append(f"* {arm} − {BASELINE} per seed: "
                         + ", ".join(f"{d:+.3f}" for d in p["per_seed_differences"])
                         + f"; SD {p['sd']:.3f}; minimum detectable effect (α = 0.05, power 0.8) "
                           f"{p['minimum_detectable_effect']:.3f}; seeds for 0.05: {p['seeds_for_0.05']}")
    for arm, entry in report["arms"].items():
        if "gain_over_sft_t_interval" in entry:
            g = entry["gain_over_sft_t_interval"]
            lines.append(f"* {arm} − SFT per seed: " + ", ".join(f"{d:+.3f}" for d in g["per_seed"])
                         + f"; mean {g['mean']:+.3f} ± {g['half_width']:.3f} (95% t over seeds)")
    lines.append(f"* Binomial SE of one pass@1 on {report['problems']} problems: "
                 f"{report['binomial_se_one_run']:.3f}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    return text


def write_csv(runs_by_arm: dict[str, list[dict]], out: str) -> None:
    horizons = sorted({h for runs in runs_by_arm.values() for r in runs for h in r["by_horizon"]}, key=int)
    fields = (["arm", "seed", "run", "config", "pass@1_before", "pass@1"]
              + [f"pass@1_H{h}" for h in horizons] + ["rl_seconds"] + [k for k, _ in HACKING])
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for runs in runs_by_arm.values():
            for r in runs:
                writer.writerow({"arm": r["arm"], "seed": r["seed"], "run": r["run"],
                                 "config": r["config"], "pass@1_before": r["pass@1_before"],
                                 "pass@1": r["pass@1"], "rl_seconds": r["seconds"],
                                 **{f"pass@1_H{h}": r["by_horizon"].get(h) for h in horizons},
                                 **r["hacking"]})


def _by_step(curves: list[list[tuple[int, float]]]) -> tuple[list[int], np.ndarray]:
    """Seeds' (step, value) curves on common steps: (steps, values [seeds, steps], NaN where a
    seed did not log a step)."""
    steps = sorted({s for curve in curves for s, _ in curve})
    return steps, np.asarray([[dict(curve).get(s, np.nan) for s in steps] for curve in curves])


def plot_curves(runs_by_arm: dict[str, list[dict]], out: str) -> None:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, runs in runs_by_arm.items():
        steps, values = _by_step([r["curve"] for r in runs])
        mean = np.nanmean(values, axis=0)
        line, = ax.plot(steps, mean, marker="o", label=f"{arm} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0),
                            color=line.get_color(), alpha=0.15)
    ax.set_xlabel("RL iteration")
    ax.set_ylabel("held-out greedy pass@1")
    ax.set_title("pass@1 vs iteration (mean; band = min–max over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "pass_at_1_curves.png"), dpi=120)
    plt.close(fig)


def plot_by_horizon(report: dict, out: str) -> None:
    plt = plots.pyplot()
    names = [s for s in report["subsets"] if s.startswith("H=")]
    arms = list(report["arms"])
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names) * len(arms) / 3), 4))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        cis = [report["arms"][arm]["subsets"][n] for n in names]
        x = np.arange(len(names)) + (i - (len(arms) - 1) / 2) * width
        means = np.asarray([c["mean"] for c in cis])
        err = np.asarray([[c["mean"] - c["low"] for c in cis], [c["high"] - c["mean"] for c in cis]])
        ax.bar(x, means, width, yerr=err, capsize=2, label=arm)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("held-out greedy pass@1")
    ax.set_title("pass@1 by horizon (95% bootstrap intervals)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "pass_at_1_by_horizon.png"), dpi=120)
    plt.close(fig)


def plot_hacking(runs_by_arm: dict[str, list[dict]], out: str) -> None:
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(HACKING), figsize=(4 * len(HACKING), 3.2))
    for ax, (key, title) in zip(axes, HACKING):
        for arm, runs in runs_by_arm.items():
            steps, values = _by_step([r["hacking_curves"][key] for r in runs])
            if not steps:
                continue
            ax.plot(steps, np.nanmean(values, axis=0), label=arm)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL iteration")
    axes[0].legend(fontsize=7)
    fig.suptitle("reward-hacking indicators of the rollouts (mean over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "hacking.png"), dpi=120)
    plt.close(fig)


def prm_of_arm(workdir: str, arm: str) -> dict:
    """The PRM an arm uses and what it cost: label sources, labelling rollouts (completions the
    label stage drew for those sources; ground truth costs none but exists only for the synthetic
    suite), and the PRM's own evaluation (probe pair accuracy and AUROC, AUROC among lines of
    failing responses). {} for an arm without a PRM."""
    base, _, variant = VARIANTS[arm]
    if base not in PRM_ARMS:
        return {}
    with open(os.path.join(workdir, "config.json")) as f:
        prm = json.load(f)["prm"]
    sources, selection = list(prm["label_sources"]), prm["selection"]
    if variant:
        sources = list(PRM_VARIANTS[variant].get("prm.label_sources", sources))
        selection = PRM_VARIANTS[variant].get("prm.selection", selection)
    label = read_summary(arm_workdir(workdir, arm) if relabels(variant) else workdir).get("label", {})
    rollouts = sum(int(label.get(s, {}).get("rollouts", 0)) for s in sources if s != "oracle")
    evaluation = read_summary(arm_workdir(workdir, arm)).get("prm_eval", {})
    probe = evaluation.get("probe", {})
    failing = evaluation.get("responses", {}).get("failing", {}).get("scorer", {})
    return {"label_sources": sources, "labelling_rollouts": rollouts,
            "selection": selection if "binary_search" in sources else None,
            "probe_pair_accuracy": probe.get("pair_accuracy"), "probe_pair_auroc": probe.get("pair_auroc"),
            "failing_lines_auroc": failing.get("auroc")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a finished pipeline run (make run)")
    parser.add_argument("--grid", choices=sorted(GRIDS), help="a named grid (arms and seeds)")
    parser.add_argument("--arms", nargs="+", help=f"arms (any of {sorted(VARIANTS)})")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--out", help="folder for the table, CSV, JSON and plots "
                        "(default <workdir>/grid_<grid>)")
    parser.add_argument("--pass_at_k", type=int, default=0, metavar="N",
                        help="also sample N responses per held-out problem from every final policy "
                             "(and the SFT policy) and report pass@k for k = 1, N/2, N (pass_at_k.md)")
    parser.add_argument("--pass_temperature", type=float, default=1.0,
                        help="sampling temperature of --pass_at_k")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run (e.g. rl.iterations=2); finished runs "
                             "are reused by name, so use a fresh workdir for a changed setting")
    args = parser.parse_args(argv)
    arms, seeds = GRIDS[args.grid] if args.grid else (None, None)
    arms, seeds = args.arms or arms, args.seeds if args.seeds is not None else seeds
    if not arms or not seeds:
        parser.error("give --grid, or --arms and --seeds")
    unknown = [a for a in arms if a not in VARIANTS]
    if unknown:
        parser.error(f"unknown arms {unknown}; known: {sorted(VARIANTS)}")
    workdir = os.path.abspath(args.workdir)
    if not os.path.exists(os.path.join(workdir, "prm", "DONE")):
        raise SystemExit(f"{workdir} holds no finished pipeline run (no prm/DONE); run make run first")
    out = os.path.abspath(args.out or os.path.join(workdir, f"grid_{args.grid or 'custom'}"))
    os.makedirs(out, exist_ok=True)
    spent = {}
    for seed in seeds:  # seed-major: a stopped grid leaves complete seeds behind
        for arm in arms:
            seconds = ensure_run(workdir, arm, seed, args.set)
            if seconds is not None:
                spent[run_name(arm, seed)] = seconds
    runs_by_arm = {arm: [collect_run(workdir, arm, s, args.set) for s in seeds] for arm in arms}
    report = analyse(runs_by_arm, seeds)
    for arm in arms:
        report["arms"][arm]["prm"] = prm_of_arm(workdir, arm)
    report.update(workdir=workdir, arm_names=arms, overrides=args.set,
                  wall_seconds_this_invocation=spent,
                  runs={a: [{k: v for k, v in r.items() if k != "hacking_curves"} for r in runs]
                        for a, runs in runs_by_arm.items()})
    if args.pass_at_k:
        n, temperature = args.pass_at_k, args.pass_temperature
        evals = {arm: [ensure_sampled_eval(workdir, arm_workdir(workdir, arm), run_name(arm, s), n,
                                           temperature) for s in seeds] for arm in arms}
        columns = {k: np.asarray(v, dtype=np.int64) for k, v in report["subset_columns"].items()}
        ks = sorted({1, max(1, n // 2), n})
        report["pass_at_k"] = analyse_pass_at_k(
            ensure_sampled_eval(workdir, workdir, None, n, temperature), evals, ks, columns,
            report["task_ids"])
        print(write_pass_at_k_table(report["pass_at_k"], out))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    write_csv(runs_by_arm, out)
    print(write_table(report, out))
    plot_curves(runs_by_arm, out)
    plot_by_horizon(report, out)
    plot_hacking(runs_by_arm, out)
    picture = os.path.join(workdir, "label_accuracy.png")
    if os.path.exists(picture):
        shutil.copyfile(picture, os.path.join(out, "labelling_cost_vs_accuracy.png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
