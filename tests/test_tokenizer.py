"""The built-in tokenizer loads through AutoTokenizer and is reproducible from its recipe."""

import json

from prm_jax.tokenizer import BUILTIN_DIR, BUILTIN_VOCAB_SIZE, load_tokenizer, train_builtin_tokenizer


def test_builtin_tokenizer_round_trips_code():
    tok = load_tokenizer("builtin")
    assert len(tok) == BUILTIN_VOCAB_SIZE
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    code = "def f(xs):\n    ys = [x * 2 for x in xs]\n\n    return sorted(ys)  # ünïcode ✓\n"
    enc = tok(code, return_offsets_mapping=True)
    assert tok.decode(enc["input_ids"]) == code
    # On ASCII text the offsets tile the text exactly (the line⇄token mapping relies on them).
    ascii_code = code.split("  #")[0] + "\n"
    spans = tok(ascii_code, return_offsets_mapping=True)["offset_mapping"]
    assert spans[0][0] == 0 and spans[-1][1] == len(ascii_code)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    # Real-BPE-like merges: a token spanning a blank line and the next indentation.
    pieces = [tok.decode([i]) for i in enc["input_ids"]]
    assert any(p.count("\n") >= 2 for p in pieces)


def test_builtin_tokenizer_is_reproducible(tmp_path):
    train_builtin_tokenizer(str(tmp_path))
    ours = json.loads((tmp_path / "tokenizer.json").read_text())
    shipped = json.loads(open(f"{BUILTIN_DIR}/tokenizer.json").read())
    assert ours["model"]["vocab"] == shipped["model"]["vocab"]
    assert ours["model"]["merges"] == shipped["model"]["merges"]
