"""Stage `prm_train`: the PRM (policy backbone + fresh scalar head) trained on the label files
named by `prm.label_sources` (binary-search rows selected by `prm.selection`; "oracle" = the
ground-truth labels, an upper-bound arm only), all from training compositions; with
`prm.line_token_targets` every token of a line regresses to its label (`prm.dense_targets`);
with `prm.loss="prm_mse_pair"` each failing one-line variant is also ranked below its correct
reference at the changed line (`prm.pairs`)
(`prm.heldout_fraction` of labelled tasks may be kept out as well).

Writes workdir/prm (HF *ForTokenClassification) and workdir/prm_training (checkpoints, metrics).
"""

from __future__ import annotations

import functools

import numpy as np

from prm_jax.models import save_pretrained
from prm_jax.models.factory import load_run_model
from prm_jax.prm import label as label_lib
from prm_jax.prm.dense_targets import dense_prm_examples
from prm_jax.prm.pairs import pair_examples
from prm_jax.stages.context import StageContext
from prm_jax.stages import common
from prm_jax.train import losses
from prm_jax.train.examples import prm_examples
from prm_jax.train.loop import train
from prm_jax.run_config import RunConfig
from prm_jax.workdir import Workdir, is_done, mark_done

RUN_NAME = "prm_training"


def split_rows(rows, fraction: float, seed: int):
    """(train, held-out) label rows, split by task so no task is on both sides."""
    tasks = sorted({r["task_id"] for r in rows})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(tasks)[: max(1, int(len(tasks) * fraction))].tolist())
    return [r for r in rows if r["task_id"] not in held], [r for r in rows if r["task_id"] in held]


def source_rows(config: RunConfig, wd: Workdir, source: str) -> list[dict]:
    """Unmasked rows of one label source ("oracle" reads labels_ground_truth.jsonl)."""
    rows = label_lib.read_labels(wd.labels("ground_truth" if source == "oracle" else source))
    return label_lib.select(rows, config.prm.selection if source == "binary_search" else "full")


def selected_rows(config: RunConfig, wd: Workdir):
    """(train, held-out) rows of every configured label source, split by task."""
    rows = [r for source in config.prm.label_sources for r in source_rows(config, wd, source)]
    if config.prm.heldout_fraction == 0:
        return rows, []
    return split_rows(rows, config.prm.heldout_fraction, config.seed)


def run(ctx: StageContext) -> dict:
    config = ctx.config
    wd = ctx.workdir
    tok = ctx.tokenizer
    train_rows, _ = selected_rows(config, wd)
    if is_done(wd.prm):
        return dict(common.load_train_result(wd.run_dir(RUN_NAME)), resumed=True)
    if config.prm.loss == "prm_mse_pair":
        make = pair_examples
    else:
        make = dense_prm_examples if config.prm.line_token_targets else prm_examples
    examples, skipped = make(train_rows, tok, config.sft.seq_len)
    print(f"PRM: {len(examples)} training responses ({skipped} skipped)")
    mesh = ctx.mesh
    model = load_run_model(config, wd.policy, head="scalar", seed=config.seed,
                           likelihood_clip=config.prm.likelihood_clip)
    loss = config.prm.loss
    if loss == "prm_mse_pair":
        loss = functools.partial(losses.prm_mse_pair_loss, pair_weight=config.prm.pair_weight)
    model, result = train(model, examples, loss=loss,
                          config=common.loop_config(config.prm, config.seed), mesh=mesh,
                          workdir=config.workdir, name=RUN_NAME)
    result.update(train_responses=len(train_rows), examples=len(examples), skipped_examples=skipped,
                  label_sources=list(config.prm.label_sources))
    common.save_train_result(wd.run_dir(RUN_NAME), result)
    save_pretrained(model, wd.prm, tokenizer=tok)
    mark_done(wd.prm)
    return dict(result, resumed=False)
