"""Code lines ⇄ token positions: the single implementation of the Line contract.

* A line is a physical line of the *response* text; blank (whitespace-only) lines are not steps.
* A line whose code is only a comment is *neutral* (label 0).
* A line's reward token is the token whose character span contains the line's terminating
  newline; the final line without a newline uses the last response token.
* Several lines can end inside one token (BPE merges such as `)\\n\\n    `): their rewards add,
  and the PRM target at that token is the label of the last of them.

Token spans come from `offsets` (start, end) character pairs as the sampler returns them (or
a tokenizer's `return_offsets_mapping`); never assume one newline per token.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

NEUTRAL, GOOD, BAD = 0, 1, -1


@dataclasses.dataclass(frozen=True)
class Line:
    """One step line of a response."""

    step: int  # index among non-blank lines (0-based)
    line_no: int  # physical line number (0-based)
    text: str  # without the newline
    start: int  # character span of the text in the response
    end: int
    has_newline: bool

    @property
    def is_comment(self) -> bool:
        return self.text.lstrip().startswith("#")

    @property
    def kind(self) -> str:
        return "comment" if self.is_comment else "step"


def split_lines(response: str) -> list[Line]:
    """The non-blank lines of `response`, with their character spans."""
    lines, pos, step = [], 0, 0
    for line_no, raw in enumerate(response.split("\n")):
        end = pos + len(raw)
        has_newline = end < len(response)
        if raw.strip():
            lines.append(Line(step, line_no, raw, pos, end, has_newline))
            step += 1
        pos = end + 1
    return lines


def prefix_through(response: str, lines: Sequence[Line], m: int, *, newline: bool = False) -> str:
    """The response text through step line m−1 (m = 0 → "").

    By default the prefix stops *before* that line's newline: BPE vocabularies merge a newline
    with the next line's indentation (`\n    `), so a prefix ending in a bare newline is a
    token boundary the policy never produced (it reads as "end of response"). The continuation
    then starts with the newline. `newline=True` includes it.
    """
    if m <= 0:
        return ""
    line = lines[m - 1]
    if not newline:
        return response[: line.end]
    return response[: line.end + 1] if line.has_newline else response[: line.end] + "\n"


def reward_tokens(lines: Sequence[Line], offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Index of each line's reward token (see module docstring)."""
    if not offsets:
        raise ValueError("a response with lines must have at least one token")
    starts = np.asarray([s for s, _ in offsets])
    ends = np.asarray([e for _, e in offsets])
    out = []
    for line in lines:
        if not line.has_newline:
            out.append(len(offsets) - 1)
            continue
        newline = line.end
        # First token whose span contains the newline character.
        hit = np.nonzero((starts <= newline) & (ends > newline))[0]
        if len(hit) == 0:
            raise ValueError(f"no token covers the newline at character {newline} (line "
                             f"{line.line_no}); offsets do not match the response text")
        out.append(int(hit[0]))
    return out


@dataclasses.dataclass(frozen=True)
class Encoded:
    """A (prompt, response) pair as model input and where each response line's reward sits.

    `reward_tokens[i]` indexes the response tokens (0 = first response token); in the full
    sequence `ids` that token sits at `prompt_len + reward_tokens[i]`.
    """

    ids: list[int]
    prompt_len: int
    lines: list[Line]
    reward_tokens: list[int]

    @property
    def response_len(self) -> int:
        return len(self.ids) - self.prompt_len

    @property
    def reward_positions(self) -> list[int]:
        return [self.prompt_len + t for t in self.reward_tokens]


def from_tokens(prompt_ids: Sequence[int], response_ids: Sequence[int], response: str,
                offsets: Sequence[tuple[int, int]]) -> Encoded:
    """Lines of `response` placed on given tokens: `offsets[j]` is the character span of
    response token j. Only text tokens count: a final EOS (no span in the text) is passed in
    `response_ids` but left out of `offsets`, so a last line without a newline ends on the last
    text token."""
    lines = split_lines(response)
    tokens = reward_tokens(lines, offsets) if lines else []
    return Encoded(list(prompt_ids) + list(response_ids), len(prompt_ids), lines, tokens)


def encode(tokenizer, prompt: str, response: str) -> Encoded:
    """Tokenizes prompt (with special tokens) and response (without) separately, as the sampler
    sees them, and places the response's lines on its tokens by their offsets."""
    p = tokenizer(prompt)["input_ids"]
    enc = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
    return from_tokens(p, enc["input_ids"], response, [tuple(o) for o in enc["offset_mapping"]])


def scatter_rewards(num_tokens: int, tokens: Sequence[int], values: Sequence[float]) -> np.ndarray:
    """Per-token rewards: each line's value added at its reward token."""
    out = np.zeros(num_tokens, np.float32)
    np.add.at(out, np.asarray(tokens, np.int64), np.asarray(values, np.float32))
    return out


def scatter_targets(num_tokens: int, tokens: Sequence[int], labels: Sequence[int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """PRM targets and mask: at each reward token the label of the last line ending there."""
    targets = np.zeros(num_tokens, np.float32)
    mask = np.zeros(num_tokens, bool)
    for token, label in zip(tokens, labels):  # in line order: the last line wins
        targets[token] = label
        mask[token] = True
    return targets, mask
