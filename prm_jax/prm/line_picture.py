"""A picture of one response's lines: the prompt, each line's PRM score beside its labels (e.g.
binary search and ground truth), the code coloured by the score on a −1 … +1 scale, and a
sentence saying whether the PRM found the first error.

The PRM's first error is its first step line scored below 0 (the sign a dense reward acts on);
it is compared with the true first error when that is given. Lines are numbered from 1 among
the response's non-blank lines (comments included), as in the label rows.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Mapping, Sequence

import numpy as np

from prm_jax import lines as lines_lib

_SYMBOL = {lines_lib.GOOD: "+", lines_lib.BAD: "−", lines_lib.NEUTRAL: "0"}


@dataclasses.dataclass(frozen=True)
class LineExample:
    prompt: str
    response: str
    # One PRM score per non-blank line of `response`.
    scores: Sequence[float]
    # Column name → one label (+1 / 0 / −1) per non-blank line, e.g. {"binary search": [...]}.
    labels: Mapping[str, Sequence[int]] = dataclasses.field(default_factory=dict)
    # Index (among non-blank lines) of the true first error (None: passing or unknown).
    true_first_error: int | None = None


def colour(score: float) -> tuple[float, float, float]:
    """−1 → red, 0 → white, +1 → green (linear in between)."""
    s = float(np.clip(score, -1, 1))
    return (1.0, 1 + s, 1 + s) if s < 0 else (1 - s, 1.0, 1 - s)


def prm_first_error(response: str, scores: Sequence[float]) -> int | None:
    """Index (among non-blank lines) of the first step line scored below 0, or None."""
    for line, s in zip(lines_lib.split_lines(response), scores):
        if not line.is_comment and s < 0:
            return line.step
    return None


def verdict(example: LineExample) -> str:
    """One sentence: where the PRM puts the first error, and whether that is right."""
    found = prm_first_error(example.response, example.scores)
    said = "no step line below 0" if found is None else f"first step line below 0 is line {found + 1}"
    if example.true_first_error is None:
        return f"PRM: {said}."
    right = found == example.true_first_error
    return (f"PRM: {said}; true first error: line {example.true_first_error + 1} — "
            f"the PRM is {'RIGHT' if right else 'WRONG'}.")


def printable(text: str) -> str:
    """`text` with control characters written as escapes (fonts have no glyph for them)."""
    return "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)


def _rows(example: LineExample):
    """(text, score or None, {column: label}) per physical response line."""
    lines = lines_lib.split_lines(example.response)
    by_line = {l.line_no: i for i, l in enumerate(lines)}
    out = []
    for line_no, text in enumerate(example.response.rstrip("\n").split("\n")):
        i = by_line.get(line_no)
        labels = {k: v[i] for k, v in example.labels.items()} if i is not None else {}
        out.append((printable(text), None if i is None else float(example.scores[i]), labels))
    return out


def render_html(example: LineExample, title: str = "") -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in example.labels)
    rows = []
    for text, score, labels in _rows(example):
        cells = "".join(f"<td>{_SYMBOL.get(labels.get(k), '')}</td>" for k in example.labels)
        if score is None:
            rows.append(f"<tr><td></td>{cells}<td><pre>{html.escape(text)}</pre></td></tr>")
            continue
        r, g, b = (int(255 * c) for c in colour(score))
        rows.append(f'<tr><td>{score:+.2f}</td>{cells}<td style="background:rgb({r},{g},{b})">'
                    f"<pre>{html.escape(text)}</pre></td></tr>")
    return (f"<html><body><h3>{html.escape(title)}</h3><pre style=\"color:#555\">"
            f"{html.escape(example.prompt)}</pre><table style=\"font-family:monospace\">"
            f"<tr><th>PRM</th>{head}<th>line</th></tr>{''.join(rows)}</table>"
            f"<p>{html.escape(verdict(example))}</p></body></html>")


def render_png(example: LineExample, path: str, title: str = "", caption: str = "") -> None:
    """A PNG: title, prompt (grey), a header row, then per line the PRM score, each label
    column (+ / − / 0) and the code on a background coloured by the score; a colour bar; the
    verdict and `caption` below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    prompt_lines = [printable(line) for line in example.prompt.rstrip("\n").split("\n")]
    rows = _rows(example)
    columns = list(example.labels)
    n = len(prompt_lines) + len(rows) + 1
    width_chars = max(len(t) for t in prompt_lines + [r[0] for r in rows]) + 8 + 7 * len(columns)
    height = 0.24 * (n + 1) + 1.7  # inches: rows, plus 0.4 title and 1.3 bottom margin
    fig = plt.figure(figsize=(max(7.0, 0.085 * width_chars + 1.5), height))
    ax = fig.add_axes([0.02, 1.3 / height, 0.96, 1 - 1.7 / height])
    ax.axis("off")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n + 0.5)

    def y(i):
        return n - i

    char = 1.0 / max(width_chars, 1)
    for i, text in enumerate(prompt_lines):
        ax.text(0, y(i), text, family="monospace", fontsize=8, color="#666", va="center")
    top = len(prompt_lines)
    x_code = (7 + 7 * len(columns)) * char
    ax.text(0, y(top), "PRM", family="monospace", fontsize=8, weight="bold", va="center")
    for j, name in enumerate(columns):
        ax.text((7 + 7 * j) * char, y(top), name[:6], family="monospace", fontsize=8,
                weight="bold", va="center")
    ax.text(x_code, y(top), "response (background = PRM score)", family="monospace", fontsize=8,
            weight="bold", va="center")
    for i, (text, score, labels) in enumerate(rows, start=top + 1):
        if score is not None:
            ax.text(0, y(i), f"{score:+.2f}", family="monospace", fontsize=8, va="center")
        for j, name in enumerate(columns):
            ax.text((9 + 7 * j) * char, y(i), _SYMBOL.get(labels.get(name), ""),
                    family="monospace", fontsize=9, va="center", weight="bold")
        ax.text(x_code, y(i), text or " ", family="monospace", fontsize=8, va="center",
                bbox=dict(facecolor=colour(score) if score is not None else (1, 1, 1),
                          edgecolor="none", pad=1.2))
    if title:
        fig.suptitle(title, fontsize=9, x=0.02, ha="left")
    cmap = LinearSegmentedColormap.from_list("prm", [colour(-1), colour(0), colour(1)])
    bar_ax = fig.add_axes([0.55, 0.3 / height, 0.4, 0.12 / height])
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=Normalize(-1, 1), cmap=cmap), cax=bar_ax,
                       orientation="horizontal")
    bar.ax.set_title("PRM line score", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.text(0.02, 1.1 / height, verdict(example), fontsize=8, ha="left", va="center")
    if caption:
        fig.text(0.02, 0.85 / height, caption, fontsize=7, ha="left", va="center", color="#444",
                 wrap=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
