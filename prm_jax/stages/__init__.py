"""The launcher's stages: name -> `run(ctx: StageContext) -> dict of results`.

The default pipeline is sft → rl_baseline → sample → label → prm_train → prm_eval → rl; each
stage reads what the earlier ones wrote into the workdir (`prm_jax.workdir` names the files) and
skips finished work.
"""

from prm_jax.stages import evaluate, label, model_check, prm_eval, prm_train, rl, sample, sft

STAGES = {
    "model_check": model_check.run,
    "evaluate": evaluate.run,
    "sft": sft.run,
    "rl_baseline": rl.run_baseline,
    "sample": sample.run,
    "label": label.run,
    "prm_train": prm_train.run,
    "prm_eval": prm_eval.run,
    "rl": rl.run,
}
