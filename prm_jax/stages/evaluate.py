"""Stage `evaluate`: sample completions from the configured model and score them (pass@k).

Reads `config.eval`: dataset/problems (as for `python -m prm_jax.evaluate`), max_problems,
n samples per problem, ks, temperature, top_p, max_new_tokens, stop_strings. Writes
`samples.jsonl` (task_id, completion) and `eval_results.jsonl` (per problem, with completions)
to the workdir and returns the summary.
"""

from __future__ import annotations

import json
import os

from prm_jax.data import sources
from prm_jax.evaluate import evaluate
from prm_jax.jsonio import write_jsonl_atomic
from prm_jax.models.factory import model_from_config
from prm_jax.stages.context import StageContext
from prm_jax.sampling import Sampler, SamplingConfig
from prm_jax.stages import common


def sample_and_evaluate(sampler: Sampler, problems, sampling: SamplingConfig, ks, *, seed: int = 0,
                        timeout_s: float | None = None):
    """Samples completions for every problem and scores them: (samples, evaluate result, batch)."""
    out = sampler.generate([p.prompt for p in problems], sampling, seed=seed)
    samples = {p.task_id: texts for p, texts in zip(problems, out.texts_by_prompt(len(problems)))}
    return samples, evaluate(problems, samples, ks, timeout_s=timeout_s), out


def run(ctx: StageContext) -> dict:
    config = ctx.config
    cfg = config.eval
    tokenizer = ctx.tokenizer
    mesh = ctx.mesh
    model = model_from_config(config, tokenizer, mesh=mesh)
    problems, report = sources.load(cfg.dataset, cfg.problems or None)
    if cfg.max_problems:
        problems = problems[: cfg.max_problems]
    sampling = SamplingConfig(temperature=cfg.temperature, top_p=cfg.top_p, n=cfg.n,
                              max_new_tokens=cfg.max_new_tokens, stop_strings=cfg.stop_strings)
    samples, result, out = sample_and_evaluate(Sampler(model, tokenizer, mesh=mesh), problems,
                                               sampling, cfg.ks, seed=config.seed,
                                               timeout_s=cfg.timeout_s)
    write_jsonl_atomic(os.path.join(config.workdir, "samples.jsonl"),
                       [{"task_id": task_id, "completion": text}
                        for task_id, texts in samples.items() for text in texts])
    write_jsonl_atomic(os.path.join(config.workdir, "eval_results.jsonl"), result["problems"])
    summary = dict(result["summary"], source=report.summary(),
                   stop_reasons={r: out.stop_reasons.count(r) for r in set(out.stop_reasons)})
    print(json.dumps({k: v for k, v in summary.items() if k.startswith("pass@")}))
    return summary
