"""RL arms over several RL seeds on one finished default run: held-out greedy pass@1 with
confidence intervals, and the paired PSGPO − outcome-only difference.

  python experiments/rl_seeds.py --workdir runs/default [--arms sparse psgpo] [--seeds 0 1 2]

Every arm × seed is a named RL run in the workdir (`configs/rl_ppo.py:<arm>` with
`rl.name=<arm>_s<seed>`, `rl.seed=<seed>`): the SFT policy, the PRM and the held-out problems are
the run's own, so seeds differ only in prompt order, sampling and update shuffles, and the two
arms of one seed see the same prompts with the same sampling seeds (a paired comparison). With
the default config, seed 0 of `sparse` and `psgpo` repeats the default run's `rl_baseline` and
`rl` (same configuration, same figures: runs are deterministic). `--set KEY=VALUE` passes
overrides to every run (e.g. `--set rl.iterations=40`). Finished runs are reused.

Prints one row per arm (mean pass@1 over seeds, 95% t-interval over seeds, per-seed values) and
the paired difference of the first two arms; writes <workdir>/rl_seeds[_<tag>].json. Baselines
beside them: the SFT policy's pass@1 (every run's `test_before`) and the binomial standard error
of one pass@1 on the held-out set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two-sided 97.5% Student-t quantiles by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width nan for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def run_arm(workdir: str, arm: str, seed: int, overrides: list[str], tag: str = "") -> dict:
    summary_path = os.path.join(workdir, "summary.json")
    with open(summary_path) as f:
        summary = json.load(f)
    name = f"{arm}_{tag}_s{seed}" if tag else f"{arm}_s{seed}"
    if name not in summary:
        cmd = [sys.executable, "-m", "prm_jax.main", f"--config=configs/rl_ppo.py:{arm}",
               f"--workdir={workdir}", f"--config.rl.name={name}", f"--config.rl.seed={seed}",
               *(f"--config.{o}" for o in overrides)]
        print("running", " ".join(cmd[2:]), flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            raise SystemExit(f"RL run {name} failed (its error is printed above)")
        with open(summary_path) as f:
            summary = json.load(f)
    return summary[name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a finished default run")
    parser.add_argument("--arms", nargs="+", default=["sparse", "psgpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run, e.g. rl.iterations=40")
    parser.add_argument("--tag", default="", help="run names <arm>_<tag>_s<seed> (use one per "
                        "set of overrides: finished runs are reused by name)")
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    if not os.path.exists(os.path.join(workdir, "prm", "DONE")):
        raise SystemExit(f"{workdir} holds no finished default run (no prm/DONE); run make run first")
    if args.tag and not args.tag.replace("_", "").isalnum():
        raise SystemExit(f"--tag={args.tag!r}: expected letters, digits and _")
    results = {arm: {seed: run_arm(workdir, arm, seed, args.set, args.tag) for seed in args.seeds}
               for arm in args.arms}
    before = next(iter(next(iter(results.values())).values()))["test_before"]
    n_test = sum(v["samples"] for v in before.get("by_horizon", {}).values()) or None
    report = {"seeds": args.seeds, "sft_pass@1": before["pass@1"], "arms": {}}
    print(f"SFT policy (every run's start): held-out pass@1 {before['pass@1']:.3f}"
          + (f" on {n_test} problems; binomial SE of one figure "
             f"{math.sqrt(before['pass@1'] * (1 - before['pass@1']) / n_test):.3f}" if n_test else ""))
    for arm, by_seed in results.items():
        values = [by_seed[s]["test"]["pass@1"] for s in args.seeds]
        mean, half = interval(values)
        report["arms"][arm] = {"pass@1": values, "mean": mean, "ci95": half}
        print(f"{arm:14s} mean {mean:.3f} ± {half:.3f} (95% t over {len(values)} seeds); "
              f"per seed {', '.join(f'{v:.3f}' for v in values)}")
    if len(args.arms) >= 2:
        a, b = args.arms[1], args.arms[0]
        diffs = [results[a][s]["test"]["pass@1"] - results[b][s]["test"]["pass@1"] for s in args.seeds]
        mean, half = interval(diffs)
        report["paired_difference"] = {"arms": [a, b], "per_seed": diffs, "mean": mean, "ci95": half}
        print(f"{a} − {b}: {mean:+.3f} ± {half:.3f} (paired by seed); per seed "
              + ", ".join(f"{d:+.3f}" for d in diffs))
    out = os.path.join(workdir, f"rl_seeds_{args.tag}.json" if args.tag else "rl_seeds.json")
    report["tag"], report["overrides"] = args.tag, args.set
    with open(out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
