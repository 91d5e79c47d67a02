"""PRM scoring API (one score per line) and a picture of a program coloured by its line scores."""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np

from prm_jax import lines as lines_lib
from prm_jax.models.sharded import ShardedModel


def score_lines(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], *,
                batch_size: int = 16, bucket: int = 64, mesh=None) -> list[list[float]]:
    """For each (prompt, response): the PRM value at each non-blank line's reward token.

    `model` is a scalar-head model or a `ShardedModel` of one (reused across calls)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
    sharded = model if isinstance(model, ShardedModel) else ShardedModel(model, mesh)
    encoded = [lines_lib.encode(tokenizer, p, r) for p, r in zip(prompts, responses)]
    return sharded.values_at([e.ids for e in encoded], [e.reward_positions for e in encoded],
                             batch_size=batch_size, bucket=bucket)


def _colour(score: float) -> tuple[float, float, float]:
    """−1 → red, 0 → white, +1 → green."""
    s = float(np.clip(score, -1, 1))
    return (1.0, 1 + s, 1 + s) if s < 0 else (1 - s, 1.0, 1 - s)


def render_html(response: str, scores: Sequence[float], title: str = "") -> str:
    """The response with each scored line's background coloured by its score."""
    lines = lines_lib.split_lines(response)
    by_line = {l.line_no: s for l, s in zip(lines, scores)}
    rows = []
    for line_no, text in enumerate(response.split("\n")):
        if line_no in by_line:
            r, g, b = (int(255 * c) for c in _colour(by_line[line_no]))
            rows.append(f'<div style="background:rgb({r},{g},{b})"><span style="color:#666">'
                        f'{by_line[line_no]:+.2f}</span>  {html.escape(text)}</div>')
        else:
            rows.append(f"<div>{html.escape(text) or '&nbsp;'}</div>")
    return (f"<html><body><h3>{html.escape(title)}</h3>"
            f"<pre style=\"font-family:monospace\">{''.join(rows)}</pre></body></html>")


def render_png(response: str, scores: Sequence[float], path: str, title: str = "") -> None:
    """A PNG of the response, one row per physical line, coloured like `render_html`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = lines_lib.split_lines(response)
    by_line = {l.line_no: s for l, s in zip(lines, scores)}
    text_lines = response.rstrip("\n").split("\n")
    height = 0.3 * (len(text_lines) + 2)
    width = max(6.0, 0.11 * max((len(t) for t in text_lines), default=40) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.axis("off")
    n = len(text_lines)
    for i, text in enumerate(text_lines):
        y = 1 - (i + 1) / (n + 1)
        colour = _colour(by_line[i]) if i in by_line else (1, 1, 1)
        label = f"{by_line[i]:+.2f}  " if i in by_line else "       "
        ax.text(0.0, y, label + text, family="monospace", fontsize=9, va="center",
                bbox=dict(facecolor=colour, edgecolor="none", pad=1.5))
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
