"""Streaming reader and writer for the safetensors format, one tensor at a time.

Format: an 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the raw
little-endian tensor bytes (offsets relative to the end of the header). Reading uses plain file
reads into a fresh buffer per tensor (no mmap), so the resident memory of a load is the model
being built plus one tensor, never the whole file; bfloat16 comes from `ml_dtypes`.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Iterable, Iterator

import ml_dtypes
import numpy as np

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NAMES = {v: k for k, v in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A safetensors file is malformed or holds an unsupported dtype."""


class SafetensorsReader:
    """Lazily reads tensors from one `.safetensors` file."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "rb")
        except OSError as e:
            raise SafetensorsError(f"cannot open {self.path}: {e}") from e
        raw = self._file.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{self.path}: truncated file (no header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise SafetensorsError(f"{self.path}: header length {n} is implausible")
        try:
            header = json.loads(self._file.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SafetensorsError(f"{self.path}: header is not valid JSON ({e})") from e
        self.metadata = header.pop("__metadata__", None) or {}
        self._data_start = 8 + n
        self._size = os.path.getsize(self.path)
        self.entries: dict[str, dict] = header

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._file.close()

    def keys(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

    def read(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        dtype_name = entry.get("dtype")
        if dtype_name not in DTYPES:
            raise SafetensorsError(f"{self.path}: tensor {name!r} has unsupported dtype {dtype_name!r}")
        dtype = DTYPES[dtype_name]
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != expected or self._data_start + end > self._size:
            raise SafetensorsError(
                f"{self.path}: tensor {name!r} byte range [{begin}, {end}) does not match shape "
                f"{shape} {dtype_name} or runs past the end of the file")
        self._file.seek(self._data_start + begin)
        out = np.empty(shape, dtype)
        got = self._file.readinto(memoryview(out.reshape(-1).view(np.uint8)))
        if got != expected:
            raise SafetensorsError(f"{self.path}: tensor {name!r} is truncated")
        return out


def write_safetensors(path: str | os.PathLike, tensors: Iterable[tuple[str, tuple, np.dtype]],
                      produce, metadata: dict[str, str] | None = None) -> int:
    """Writes tensors one at a time; returns bytes written.

    `tensors` lists (name, shape, numpy dtype) in file order so the header can be written first;
    `produce(name)` returns that tensor's array, called once per tensor just before it is written.
    """
    tensors = list(tensors)
    header: dict[str, dict] = {}
    offset = 0
    for name, shape, dtype in tensors:
        dtype = np.dtype(dtype)
        if dtype not in _NAMES:
            raise SafetensorsError(f"tensor {name!r}: dtype {dtype} cannot be stored in safetensors")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": _NAMES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = os.fspath(path) + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, dtype in tensors:
            array = np.ascontiguousarray(produce(name), dtype=np.dtype(dtype))
            if tuple(array.shape) != tuple(shape):
                raise SafetensorsError(f"tensor {name!r}: produced shape {array.shape}, declared {shape}")
            f.write(memoryview(array.reshape(-1).view(np.uint8)))
    os.replace(tmp, path)
    return 8 + len(blob) + offset


def iter_checkpoint_files(directory: str) -> Iterator[str]:
    """The safetensors files of a HF checkpoint directory (sharded index or single file)."""
    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.exists(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise SafetensorsError(f"{index}: not a valid safetensors index ({e})") from e
        files = sorted(set(weight_map.values()))
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.exists(path):
                raise SafetensorsError(f"{index} lists {name}, which does not exist")
            yield path
    elif os.path.exists(single):
        yield single
    else:
        raise FileNotFoundError(
            f"{directory} has neither model.safetensors nor model.safetensors.index.json")
