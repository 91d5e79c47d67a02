"""Framing and the value codec between the judge and the program process.

Frames are a 4-byte big-endian length and a `marshal` body. Only two kinds of data cross:

* requests (judge -> program) and replies (program -> judge), each a tuple whose first item is a
  str tag and whose second is the call's sequence number;
* values: exact builtin types only (None, bool, int, float, complex, str, bytes, list, tuple, dict,
  set, frozenset), plus *handle markers* `(Ellipsis, id, type name, kind)` standing for an object
  that stays in the program process (id: an int, or the name of a program global). `Ellipsis`
  is not a value type, so a marker can never be confused with data.

The program side converts what the program returns (`to_wire`): subclasses of builtin types
become their base type (namedtuples arrive as tuples, `Counter` as dict), with the underlying
data read through the base type's own slots so that overridden methods are never consulted;
anything else becomes a handle. The judge side (`check_value`) trusts nothing: it accepts only
exact types and well-formed markers, walks iteratively (depth is not limited by recursion) and
rejects anything else with a reason.
"""

import marshal
import struct

HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20          # bytes of one frame; a larger reply fails its call, not the run
MAX_NODES = 5_000_000         # containers + items in one decoded value
SCALARS = (type(None), bool, int, float, complex, str, bytes)
CONTAINERS = (list, tuple, dict, set, frozenset)
HANDLE_KINDS = ("object", "callable", "class", "iterator")


_EXCEPTION_KINDS = ((MemoryError, "memory"), (RecursionError, "recursion"), (SystemExit, "exit"),
                    (KeyboardInterrupt, "exit"))


def exception_kind(exc, default="runtime"):
    """The failure kind the results report for an exception raised while running code."""
    for cls, kind in _EXCEPTION_KINDS:
        if isinstance(exc, cls):
            return kind
    return default


class ProtocolError(Exception):
    """A frame or value that does not follow the protocol."""


# ----------------------------------------------------------------------------- framing
def read_exact(fd, n, read=None):
    """n bytes from fd, or None at end of file. `read` lets a caller bind os.read early."""
    import os
    read = read or os.read
    chunks = []
    while n:
        chunk = read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd, limit=MAX_FRAME, read=None):
    """The next frame's body (bytes), or None at end of file; ProtocolError if over `limit`."""
    head = read_exact(fd, HEADER.size, read)
    if head is None:
        return None
    size = HEADER.unpack(head)[0]
    if size > limit:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}")
    body = read_exact(fd, size, read)
    if body is None:
        raise ProtocolError("truncated frame")
    return body


class FrameReader:
    """Frames from one fd, read in large chunks (one read() per message in the common case)."""

    def __init__(self, fd, limit=MAX_FRAME, read=None):
        import os
        self.fd, self.limit, self.read = fd, limit, read or os.read
        self.buf = bytearray()

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.read(self.fd, max(1 << 16, min(n - len(self.buf), 1 << 20)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def next(self):
        """The next frame's body, or None at end of file; ProtocolError if malformed."""
        if not self._fill(HEADER.size):
            if self.buf:
                raise ProtocolError("truncated frame")
            return None
        size = HEADER.unpack_from(self.buf)[0]
        if size > self.limit:
            raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self.limit}")
        if not self._fill(HEADER.size + size):
            raise ProtocolError("truncated frame")
        body = bytes(self.buf[HEADER.size:HEADER.size + size])
        del self.buf[:HEADER.size + size]
        return body


def write_frame(fd, body, write=None):
    import os
    write = write or os.write
    data = HEADER.pack(len(body)) + body
    while data:
        data = data[write(fd, data):]


def dumps(obj):
    return marshal.dumps(obj, 4)


def loads(body):
    """marshal.loads that reports every failure as ProtocolError."""
    try:
        return marshal.loads(body)
    except Exception as e:  # ValueError, EOFError, TypeError, MemoryError, ...
        raise ProtocolError(f"undecodable frame ({type(e).__name__})") from None


# ----------------------------------------------------------------------------- program side
def _scalar_copy(value):
    """Copy of a builtin-subclass instance as its exact base type, through the base slots
    (so a subclass's overridden __eq__, __int__, __iter__... is never consulted); None if
    `value` is not such an instance."""
    if isinstance(value, int):
        return int.__add__(value, 0)
    if isinstance(value, float):
        return float.__mul__(value, 1.0)
    if isinstance(value, complex):
        return complex.__mul__(value, 1.0)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"".join([value])
    if type(value) is range:
        return list(value)
    return None


def _container_kind(obj):
    for kind in CONTAINERS:
        if isinstance(obj, kind):
            return kind
    return None


def _children(obj, kind):
    if kind is dict:
        return [x for pair in dict.items(obj) for x in pair]
    return list(kind.__iter__(obj))


def _build(kind, items):
    if kind is dict:
        return dict(zip(items[0::2], items[1::2]))
    return kind(items)


def to_wire(value, register, max_depth=20_000):
    """`value` as exact builtin data; objects of other types become `register(obj)` markers.

    Iterative post-order walk, so nesting depth is bounded by `max_depth`, not by the
    recursion limit. Shared sub-objects are converted once; a value that contains itself is
    rejected (ValueError), as is anything nested deeper than `max_depth`.
    """
    try:
        marshal.dumps(value, 4)  # fast path: already exact builtin data
        return value
    except (ValueError, TypeError):
        pass
    memo, keep, in_progress = {}, [], set()
    stack = [(value, 0, False)]
    while stack:
        obj, depth, expanded = stack.pop()
        if type(obj) in SCALARS:
            continue
        key = id(obj)
        kind = _container_kind(obj)
        if expanded:
            memo[key] = _build(kind, [c if type(c) in SCALARS else memo[id(c)]
                                      for c in _children(obj, kind)])
            in_progress.discard(key)
            continue
        if key in memo:
            continue
        if key in in_progress:
            raise ValueError("a value that contains itself cannot be sent")
        keep.append(obj)  # ids stay unique while the walk runs
        if kind is None:
            copy = _scalar_copy(obj)
            memo[key] = copy if copy is not None else register(obj)
            continue
        if depth >= max_depth:
            raise ValueError(f"value nested deeper than {max_depth} levels")
        in_progress.add(key)
        stack.append((obj, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(obj, kind))
    return memo[id(value)]


# ----------------------------------------------------------------------------- judge side
def check_value(value, make_handle, max_nodes=MAX_NODES):
    """`value` (just unmarshalled) if it is exact builtin data; markers become make_handle(...).

    Raises ProtocolError naming the first thing that is not allowed. Iterative: any nesting
    depth that marshal produced is accepted.
    """
    stack = [value]
    seen = set()
    has_markers = False
    nodes = 0
    while stack:
        obj = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise ProtocolError(f"value has more than {max_nodes} items")
        t = type(obj)
        if t in SCALARS:
            continue
        if obj is Ellipsis:
            raise ProtocolError("stray handle marker")
        if t not in CONTAINERS:
            raise ProtocolError(f"type {t.__name__} is not allowed")
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if t is tuple and obj and obj[0] is Ellipsis:
            _check_marker(obj)
            has_markers = True
            continue
        if t is dict:
            stack.extend(obj.keys())
            stack.extend(obj.values())
        else:
            stack.extend(obj)
    if not has_markers:
        return value
    return _replace_markers(value, make_handle)


def _check_marker(obj):
    if not (len(obj) == 4 and type(obj[1]) in (int, str) and type(obj[2]) is str
            and type(obj[3]) is str and obj[3] in HANDLE_KINDS and len(obj[2]) < 300):
        raise ProtocolError("malformed handle marker")


def _replace_markers(value, make_handle):
    """Rebuilds `value` with markers turned into handles (iterative post-order)."""
    done = {}
    stack = [(value, False)]
    while stack:
        obj, expanded = stack.pop()
        t = type(obj)
        if t in SCALARS or id(obj) in done:
            continue
        if t is tuple and obj and obj[0] is Ellipsis:
            done[id(obj)] = make_handle(obj[1], obj[2], obj[3])
            continue
        children = list(obj.items()) if t is dict else list(obj)
        flat = [x for pair in children for x in pair] if t is dict else children
        if not expanded:
            stack.append((obj, True))
            stack.extend((c, False) for c in flat if id(c) not in done)
            continue

        def sub(x):
            return done.get(id(x), x) if type(x) not in SCALARS else x
        if t is dict:
            done[id(obj)] = {sub(k): sub(v) for k, v in children}
        elif t is list:
            done[id(obj)] = [sub(x) for x in children]
        else:
            done[id(obj)] = t(sub(x) for x in children)
    return done.get(id(value), value)
