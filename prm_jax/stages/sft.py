"""Stage `sft`: supervised fine-tuning on synthetic references; exports the policy.

Writes workdir/policy (and policy_step<N> snapshots) and workdir/sft (checkpoints, metrics,
result.json). A re-run after the export reuses it; a killed run resumes from its checkpoint.
"""

from __future__ import annotations

import functools

from prm_jax.models import save_pretrained
from prm_jax.models.factory import load_run_model, model_from_config
from prm_jax.stages.context import StageContext
from prm_jax.stages import common
from prm_jax.train.examples import sft_examples
from prm_jax.train.loop import train
from prm_jax.train.losses import next_token_loss
from prm_jax.workdir import is_done, mark_done


def run(ctx: StageContext) -> dict:
    config = ctx.config
    wd = ctx.workdir
    tok = ctx.tokenizer
    mesh = ctx.mesh
    test = common.problems(config, "test", config.data.num_test)
    if is_done(wd.policy):
        model = load_run_model(config, wd.policy)
        result = dict(common.load_train_result(wd.run_dir("sft")), resumed=True)
    else:
        train_problems = common.problems(config, "train", config.data.num_train)
        examples, skipped = sft_examples(train_problems, tok, config.sft.seq_len)
        print(f"SFT: {len(examples)} examples ({skipped} longer than {config.sft.seq_len} skipped)")
        model = model_from_config(config, tok, mesh=mesh)

        def snapshot(step, get_model):
            if step in config.sft.snapshot_steps:
                save_pretrained(get_model(), wd.snapshot(step), tokenizer=tok)
                mark_done(wd.snapshot(step))

        loss = functools.partial(next_token_loss, logits_chunk=config.sft.logits_chunk)
        model, result = train(model, examples, loss=loss,
                              config=common.loop_config(config.sft, config.seed), mesh=mesh,
                              workdir=config.workdir, name="sft", on_step=snapshot)
        result.update(examples=len(examples), skipped_examples=skipped)
        common.save_train_result(wd.run_dir("sft"), result)
        save_pretrained(model, wd.policy, tokenizer=tok)
        mark_done(wd.policy)
        result["resumed"] = False
    result["test"] = common.pass_at_1_by_horizon(model, tok, test, config.sample.max_new_tokens, mesh)
    print(f"SFT policy pass@1 on held-out compositions: {result['test']['pass@1']:.3f}")
    return result
