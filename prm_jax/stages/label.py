"""Stage `label`: binary-search labels (PSGPO) for every response, per-line Monte Carlo on a
failing subset (the baseline), mutation labels (PRLCoder) from correct responses.

Writes workdir/labels_{binary_search,monte_carlo,mutation}.jsonl; labelling resumes after the
batches already written.
"""

from __future__ import annotations

import os
import time

from prm_jax.data.problem import Problem
from prm_jax.jsonio import read_jsonl, write_jsonl_atomic
from prm_jax.models import load_pretrained
from prm_jax.prm import label as label_lib
from prm_jax.prm import mutate
from prm_jax.prm.rollouts import SamplerPolicy, SandboxVerifier
from prm_jax.stages.context import StageContext
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.sandbox import SandboxPool
from prm_jax.stages import common
from prm_jax.workdir import Workdir


def _responses(wd: Workdir) -> list[label_lib.Response]:
    out = []
    for r in read_jsonl(wd.responses, "responses file"):
        if r["passed"] is None:
            continue  # infrastructure error: masked
        out.append(label_lib.Response(Problem.from_dict(r["problem"]), r["response"],
                                      r["response_id"], r["passed"]))
    return out


def run(ctx: StageContext) -> dict:
    config = ctx.config
    wd = ctx.workdir
    tok = ctx.tokenizer
    c = config.label
    policy = load_pretrained(wd.policy)
    rollout = SamplerPolicy(Sampler(policy, tok, mesh=ctx.mesh),
                            SamplingConfig(temperature=c.temperature,
                                           max_new_tokens=config.sample.max_new_tokens,
                                           stop_strings=common.STOP))
    items = _responses(wd)
    failing_subset = [r for r in items if not r.passed][: c.mc_responses]
    results = {}
    with SandboxPool() as pool:
        verifier = SandboxVerifier(pool)
        for method, subset in (("binary_search", items), ("monte_carlo", failing_subset)):
            start = time.perf_counter()
            stats = label_lib.label_responses(
                subset, rollout, verifier,
                label_lib.LabelConfig(method=method, k=c.k, wave=c.wave, seed=config.seed,
                                      batch_size=c.batch_size), wd.labels(method),
                progress=lambda done, total, m=method: print(f"  {m}: batch {done}/{total}"))
            stats["seconds"] = time.perf_counter() - start
            results[method] = stats
        correct = [r for r in items if r.passed][: c.mutation_responses]
        path = wd.labels("mutation")
        if not os.path.exists(path):
            write_jsonl_atomic(path, mutate.label_by_mutation(
                correct, verifier, per_line=c.mutation_per_line, seed=config.seed))
        results["mutation"] = label_lib.label_statistics(label_lib.read_labels(path))
    results["agreement"] = agreement(wd)
    bs = results["binary_search"]
    print(f"labels: {bs['lines']} lines by binary search ({bs['rollouts']} rollouts), MC agreement "
          f"{results['agreement']['line_agreement']:.3f}, MC/BS rollouts per response "
          f"{results['agreement']['rollout_ratio']:.2f}")
    return results


def agreement(wd: Workdir) -> dict:
    """Line-label agreement and cost ratio between binary search and MC on the same responses."""
    bs = {r["response_id"]: r for r in label_lib.read_labels(wd.labels("binary_search"))}
    mc = label_lib.read_labels(wd.labels("monte_carlo"))
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
