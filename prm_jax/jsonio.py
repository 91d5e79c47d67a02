"""JSON Lines in one place: reading with `file:line` errors (plain or gzip), atomic writes."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any, Iterator


class JsonlError(ValueError):
    """A JSONL file has a line that is not a JSON object."""


def _open_text(path: str):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def iter_json_lines(path: str, what: str = "file") -> Iterator[tuple[str, Any]]:
    """Yields (`path:line`, parsed value) for each non-blank line, the value being a JsonlError
    naming the line where it is not valid JSON (callers that skip bad rows keep going); `.gz`
    files are decompressed.

    Raises FileNotFoundError for a missing path or a directory, JsonlError for a file that cannot
    be decoded.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise FileNotFoundError(f"{what} {path} is not a file (it is a directory)")
    try:
        with _open_text(path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as e:
                    yield where, JsonlError(f"{where}: not valid JSON ({e.msg})")
    except (gzip.BadGzipFile, UnicodeDecodeError, EOFError) as e:
        raise JsonlError(f"{path}: cannot be read as {'gzip ' if path.endswith('.gz') else ''}"
                         f"UTF-8 JSONL ({e})") from e


def iter_jsonl(path: str, what: str = "file") -> Iterator[tuple[str, dict]]:
    """Yields (`path:line`, object) for each non-blank line (see `iter_json_lines`); a line that
    is not a JSON object is a JsonlError naming it."""
    for where, row in iter_json_lines(path, what):
        if isinstance(row, JsonlError):
            raise row
        if not isinstance(row, dict):
            raise JsonlError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def read_jsonl(path: str, what: str = "file") -> list[dict]:
    return [row for _, row in iter_jsonl(path, what)]


def write_atomic(path: str, text: str) -> None:
    """Writes `path.partial.<pid>`, then renames it over `path`: readers never see half a file,
    and two processes writing one file (two runs started at once in one workdir) do not take
    each other's temporary file — the last rename wins."""
    tmp = f"{path}.partial.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_jsonl_atomic(path: str, rows) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_json_atomic(path: str, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def merge_json_atomic(path: str, updates: dict) -> dict:
    """Merges `updates` into the JSON object stored at `path` (created if absent) and returns
    the result. Read, merge and write happen under an exclusive `flock` on `path.lock`, so
    processes merging into one file (RL arms finishing in one workdir) keep each other's
    entries; the write itself is `write_atomic`."""
    import fcntl

    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                current = json.load(f)
        current.update(updates)
        write_json_atomic(path, current)
    return current


def check_output_path(path: str, *, overwrite: bool, what: str = "--out") -> str:
    """Absolute `path` after checking it can be written: its folder exists, it is not a
    directory, and it does not exist unless `overwrite`. Raises FileNotFoundError/FileExistsError."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise FileExistsError(f"{what} {path} is a directory; give a file path")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {what} {path} ({folder}) does not exist")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{what} {path} exists; pass --overwrite to replace it")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"the folder of {what} {path} ({folder}) is not writable")
    return path
