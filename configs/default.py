"""Default pipeline on the built-in tiny model and tokenizer (CPU, about a minute).

  python -m prm_jax.main --config=configs/default.py --workdir=runs/default

Stage `model_check`: builds a 2-layer d=128 Llama-family decoder for the built-in byte-level BPE
tokenizer, shards it over every device (mesh below), runs the jitted sharded forward pass and
`train_steps` AdamW steps of next-token prediction on bundled Python code, exports the model as a
Hugging Face checkpoint (safetensors + config.json + tokenizer) and reloads it. Expected:
the loss falls from about ln(1024) = 6.9, and `export_max_abs_err` in
`runs/default/summary.json` is below 1e-5.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Stages run in order; names are keys of prm_jax.run.STAGES.
    config.stages = ("model_check",)
    config.seed = 0
    # "builtin" or a local directory with tokenizer.json (e.g. a HF checkpoint).
    config.tokenizer = "builtin"
    # A HF checkpoint directory to start from instead of random weights ("" = random init).
    config.init_from = ""
    # Call jax.distributed.initialize() first (multi-host runs).
    config.distributed = False

    config.model = ml_collections.ConfigDict()
    config.model.model_type = "llama"
    config.model.vocab_size = 0  # 0 = the tokenizer's size
    config.model.hidden_size = 128
    config.model.intermediate_size = 384
    config.model.num_layers = 2
    config.model.num_heads = 4
    config.model.num_kv_heads = 2
    config.model.rope_theta = 10000.0
    config.model.tie_word_embeddings = True
    config.model.max_position_embeddings = 1024
    config.model.dtype = "float32"
    config.model.param_dtype = "float32"

    # Mesh axis sizes; -1 = all remaining devices.
    config.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))

    config.batch_size = 8
    config.seq_len = 128
    config.train_steps = 20
    config.learning_rate = 3e-3
    return config
