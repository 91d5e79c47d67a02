"""Tiny random Hugging Face checkpoints (PyTorch) used as the oracle in model tests."""

from __future__ import annotations

import numpy as np

TINY_VARIANTS = {
    # name: (model_type, kwargs)
    "llama_tied_mha": ("llama", dict(num_attention_heads=4, num_key_value_heads=4,
                                     tie_word_embeddings=True)),
    "llama_untied_gqa_theta": ("llama", dict(num_attention_heads=4, num_key_value_heads=2,
                                             tie_word_embeddings=False, rope_theta=500000.0)),
    "llama_bias_llama3_rope": ("llama", dict(
        num_attention_heads=4, num_key_value_heads=1, attention_bias=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        rope_theta=50000.0)),
    "qwen2_tied_gqa": ("qwen2", dict(num_attention_heads=4, num_key_value_heads=2,
                                     tie_word_embeddings=True, rope_theta=1000000.0)),
    "qwen2_untied_mha": ("qwen2", dict(num_attention_heads=4, num_key_value_heads=4,
                                       tie_word_embeddings=False)),
}


def make_hf_model(variant: str, *, head: str = "lm", seed: int = 0, vocab_size: int = 97):
    """A tiny random HF model of `variant` with non-trivial biases and norm scales."""
    import torch
    import transformers

    model_type, kwargs = TINY_VARIANTS[variant]
    kwargs = dict(kwargs)
    rope_scaling = kwargs.pop("rope_scaling", None)
    cls_config = transformers.LlamaConfig if model_type == "llama" else transformers.Qwen2Config
    config = cls_config(vocab_size=vocab_size, hidden_size=32, intermediate_size=48,
                        num_hidden_layers=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                        **kwargs)
    if rope_scaling is not None:
        params = dict(config.rope_parameters)
        params.update(rope_scaling)
        config.rope_parameters = params
    if head == "scalar":
        config.num_labels = 1
    torch.manual_seed(seed)
    auto = (transformers.AutoModelForCausalLM if head == "lm"
            else transformers.AutoModelForTokenClassification)
    model = auto.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():  # random biases and norm scales so every tensor is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in name else 0.0))
    return model.eval()


def padded_batch(vocab_size: int, seed: int = 0):
    """Left-padded batch of three prompts of lengths 11, 7 and 1: (tokens, mask) as int32/bool."""
    rng = np.random.default_rng(seed)
    lengths, t = [11, 7, 1], 11
    tokens = np.zeros((len(lengths), t), np.int32)
    mask = np.zeros((len(lengths), t), bool)
    for i, n in enumerate(lengths):
        tokens[i, t - n:] = rng.integers(1, vocab_size, n)
        mask[i, t - n:] = True
    return tokens, mask


def hf_forward(model, tokens, mask):
    """HF logits (or scores) with positions counted over real tokens, like our decoder."""
    import torch

    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long),
                    position_ids=torch.tensor(positions, dtype=torch.long))
    return out.logits.float().numpy()
