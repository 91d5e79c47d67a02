"""The judge process: runs a job's tests and decides every verdict; never runs program code.

The judge is forked from the server once per worker, before any program is loaded, and serves
one run after another (`serve`); it never imports, unpickles or executes anything a program
produced, and each run gets a fresh namespace. Test code sees the judge's own builtins and stdlib
(a program that rebinds `abs` or patches `math.isclose` changes only its own process). Each name
the program defines is bound in the tests' namespace according to the program's manifest:

  function, callable   a proxy: calling it sends the arguments over the pipe and returns the
                       program's return value, decoded as exact builtin data
  class                a proxy that constructs the object remotely and returns a handle
  constant             its value, as data
  stdlib import        the judge's own copy of that object (`from math import sqrt`)
  module               the judge's own import of that module
Names of builtins are never bound to the program's objects.

Objects that cannot cross as data stay in the program and are represented by a `Remote` handle:
attributes and methods are fetched remotely, iterators (generators) are advanced remotely, two
handles compare equal when their type names and instance attributes (as data) are equal, and a
handle's truth value, ordering or arithmetic is an error. A test that compares handles or
checks their type is marked as relying on program-defined behaviour (values obtained through
handles, e.g. `obj.method()` results, are plain data like any other).

Exceptions come back as type name + message: builtin exception types are re-raised as themselves, a program's own exception type as a
same-named subclass of its nearest builtin base (`except ValueError` works), anything else as
`ProgramError`. Faults no test may absorb — the program process ending or breaking the protocol
(malformed, unexpected or oversized replies: the call in flight and every later call of the run
fail), a return value that cannot be sent, SystemExit/KeyboardInterrupt in a call — are
`RunFault`s: not `Exception`s, and a test that catches one anyway still fails.
"""

import builtins
import json
import os
import sys
import time

from . import protocol

_BUILTIN_NAMES = frozenset(dir(builtins))
_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_FLUSH_S = 0.05
_RAISABLE = {name: obj for name, obj in vars(builtins).items()
             if isinstance(obj, type) and issubclass(obj, Exception)}


def _raised(type_name, message):
    return f"program raised {type_name}: {message}" if message else f"program raised {type_name}"


class ProgramError(Exception):
    """An exception raised by program code whose type is not a builtin exception."""

    def __init__(self, type_name, message):
        super().__init__(_raised(type_name, message))
        self.type_name = type_name


class RunFault(BaseException):
    """Something no test may absorb: the test fails even if it catches this (tests' `except
    Exception` cannot see it, and a bare `except` is overruled by `_Test.fault`)."""

    def __init__(self, message):
        super().__init__(message)
        _Test.fault = _Test.fault or self


class ProgramGone(RunFault):
    """The program process ended, or broke the protocol: no further call can be answered."""


class ReplyRejected(RunFault):
    """The program's return value could not be sent (too large, too deep, self-containing)."""


class ProgramExit(RunFault):
    """The program raised SystemExit/KeyboardInterrupt/GeneratorExit in a call."""

    def __init__(self, type_name, message):
        super().__init__(_raised(type_name, message))


class Untrusted(TypeError):
    """A test asked a program-defined object for behaviour only its own code could supply
    (truth value, ordering, arithmetic, ...)."""


class _Test:
    """Per-test flags set while a test runs."""
    program_defined = False
    fault = None


class Channel:
    """The judge's end of the two pipes: one request in flight at a time."""

    def __init__(self, req_fd, rep_fd):
        self.req_fd, self.rep_fd = req_fd, rep_fd
        self.replies = protocol.FrameReader(rep_fd)
        self.seq = 0
        self.broken = None
        self.names = {}

    def receive(self, seq):
        """The program's next frame, which must be a reply to request `seq`."""
        if self.broken:
            raise ProgramGone(self.broken)
        try:
            body = self.replies.next()
            if body is None:
                raise protocol.ProtocolError("the program process ended")
            reply = protocol.loads(body)
            if type(reply) is not tuple or len(reply) < 2 or type(reply[0]) is not str:
                raise protocol.ProtocolError("malformed reply")
            if reply[1] != seq or type(reply[1]) is not int:
                raise protocol.ProtocolError(f"reply to request {reply[1]!r} while {seq} was in "
                                             "flight")
        except (protocol.ProtocolError, OSError, MemoryError) as e:
            self.broken = f"{e}"
            raise ProgramGone(self.broken) from None
        return reply

    def request(self, *request):
        if self.broken:
            raise ProgramGone(self.broken)
        self.seq += 1
        try:
            protocol.write_frame(self.req_fd, protocol.dumps((request[0], self.seq) + request[1:]))
        except OSError:
            self.broken = "the program process ended"
            raise ProgramGone(self.broken) from None
        reply = self.receive(self.seq)
        tag = reply[0]
        try:
            if tag == "ok" and len(reply) == 4 and type(reply[3]) is tuple:
                return self.value(reply[2]), self.value(reply[3])
            if tag == "raise" and len(reply) == 5 and all(type(x) is str for x in reply[2:]):
                raise _exception(reply[2][:100], reply[3][:500], reply[4][:100])
            if tag == "error" and len(reply) == 3 and type(reply[2]) is str:
                raise ReplyRejected(f"the program's return value was rejected: {reply[2][:500]}")
        except protocol.ProtocolError as e:
            self.broken = f"malformed reply ({e})"
            raise ProgramGone(self.broken) from None
        self.broken = f"malformed {tag[:20]!r} reply"
        raise ProgramGone(self.broken)

    def value(self, data):
        return protocol.check_value(data, self.handle)

    def handle(self, hid, type_name, kind):
        return Remote(self, hid, type_name, kind)


_DERIVED = {}


def _exception(type_name, message, base_name):
    """The judge-side exception for one the program raised: the builtin type itself, or a
    class of the same name derived from the program type's nearest builtin base (so tests'
    `except ValueError` still work); ProgramError for anything else (SystemExit, ...)."""
    if type_name in ("SystemExit", "KeyboardInterrupt", "GeneratorExit") or base_name in (
            "SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"):
        return ProgramExit(type_name, message)
    cls = _RAISABLE.get(type_name)
    if cls is None:
        base = _RAISABLE.get(base_name)
        if base is None or not type_name.isidentifier():
            return ProgramError(type_name, message)
        cls = _DERIVED.get((type_name, base))
        if cls is None:
            if len(_DERIVED) > 512:  # the judge outlives runs: programs cannot grow it unbounded
                _DERIVED.clear()
            cls = _DERIVED[(type_name, base)] = type(type_name, (base,), {"__module__": "program"})
    try:
        return cls(message) if message else cls()
    except Exception:
        return ProgramError(type_name, message)


def _to_wire_arg(value):
    def register(obj):
        if isinstance(obj, Remote):
            return (Ellipsis, object.__getattribute__(obj, "_hid"),
                    object.__getattribute__(obj, "_type_name"), "object")
        if hasattr(type(obj), "__next__") or type(obj) in _DICT_VIEWS:
            return protocol.to_wire(list(obj), register)  # iterators cross as their items
        raise TypeError(f"a test cannot pass a {type(obj).__name__} to the program "
                        "(only builtin data and the program's own objects cross)")
    return protocol.to_wire(value, register)


def _apply_mutations(args, changed):
    """Copies the program's in-place changes to list/dict/set arguments back into them."""
    for index, new in changed if type(changed) is tuple else ():
        if type(index) is not int or not 0 <= index < len(args):
            continue
        old = args[index]
        if type(old) is list and type(new) is list:
            old[:] = new
        elif type(old) in (dict, set) and type(new) is type(old):
            old.clear()
            old.update(new)


class Remote:
    """A program object (or a program function/class, by name) that stays in the program."""

    __slots__ = ("_channel", "_hid", "_type_name", "_kind", "__name__")

    def __init__(self, channel, hid, type_name, kind, name=None):
        for k, v in (("_channel", channel), ("_hid", hid), ("_type_name", type_name),
                     ("_kind", kind), ("__name__", name or type_name)):
            object.__setattr__(self, k, v)

    def __call__(self, *args, **kwargs):
        channel = object.__getattribute__(self, "_channel")
        wire_args, wire_kwargs = _to_wire_arg(args), _to_wire_arg(kwargs)
        result, changed = channel.request("call", object.__getattribute__(self, "_hid"),
                                          wire_args, wire_kwargs)
        _apply_mutations(args, changed)
        return result

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        channel = object.__getattribute__(self, "_channel")
        return channel.request("getattr", object.__getattribute__(self, "_hid"), name)[0]

    def __setattr__(self, name, value):
        raise AttributeError("program objects cannot be modified by tests")

    def _state(self):
        channel = object.__getattribute__(self, "_channel")
        return channel.request("state", object.__getattribute__(self, "_hid"))[0]

    def __eq__(self, other):
        if not isinstance(other, Remote):
            return NotImplemented
        _Test.program_defined = True
        get = object.__getattribute__
        if get(self, "_hid") == get(other, "_hid"):
            return True
        return (get(self, "_type_name") == get(other, "_type_name")
                and get(self, "_state")() == get(other, "_state")())

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self):
        return hash(object.__getattribute__(self, "_type_name"))

    def __bool__(self):
        raise Untrusted(f"the truth value of a program-defined "
                        f"{object.__getattribute__(self, '_type_name')} object is not trusted")

    def __iter__(self):
        if object.__getattribute__(self, "_kind") != "iterator":
            raise Untrusted(f"program-defined {object.__getattribute__(self, '_type_name')} "
                            "objects cannot be iterated by tests (only iterators and generators)")
        return self

    def __next__(self):
        channel = object.__getattribute__(self, "_channel")
        try:
            return channel.request("next", object.__getattribute__(self, "_hid"))[0]
        except StopIteration:
            raise StopIteration from None

    def __repr__(self):
        return f"<program {object.__getattribute__(self, '_type_name')} object>"

    def __instancecheck__(self, obj):
        """`isinstance(x, P)` for a program class P: x is a program object of a type named P."""
        get = object.__getattribute__
        if not isinstance(obj, Remote):
            return False
        _Test.program_defined = True
        return get(obj, "_type_name") in (get(self, "__name__"), get(self, "_type_name"))


def _untrusted_operation(name):
    def operation(self, *args):
        raise Untrusted(f"{name} on a program-defined "
                        f"{object.__getattribute__(self, '_type_name')} object is not trusted")
    operation.__name__ = name
    return operation


for _name in ("lt", "le", "gt", "ge", "len", "contains", "getitem", "index", "int", "float",
              "abs", "neg", "pos", "invert", "round", "add", "radd", "sub", "rsub", "mul",
              "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv", "mod", "rmod", "pow",
              "rpow", "and", "rand", "or", "ror", "xor", "rxor", "lshift", "rshift"):
    setattr(Remote, f"__{_name}__", _untrusted_operation(f"__{_name}__"))
del _name


# Standard-library modules whose import does something (opens a browser, prints, needs a
# display): never imported on a program's say-so.
_NO_IMPORT = frozenset({"antigravity", "this", "__hello__", "__phello__", "idlelib", "turtle",
                        "turtledemo", "tkinter", "ensurepip", "venv", "pydoc_data", "lib2to3"})


def _importable(name):
    """The judge imports only standard-library modules, without import-time effects."""
    top = name.partition(".")[0]
    return top in sys.stdlib_module_names and top not in _NO_IMPORT


def bind_manifest(entries, channel, namespace):
    """Binds the program's names in the tests' namespace (see the module docstring)."""
    import importlib
    if type(entries) is not tuple:
        raise protocol.ProtocolError("malformed manifest")
    for entry in entries:
        if type(entry) is not tuple or len(entry) != 3 or type(entry[0]) is not str \
                or type(entry[1]) is not str:
            raise protocol.ProtocolError("malformed manifest entry")
        kind, name, extra = entry
        if not name.isidentifier() or name.startswith("__") or name in _BUILTIN_NAMES:
            continue
        if kind in ("call", "class"):
            namespace[name] = Remote(channel, name, name, "callable", name)
        elif kind == "value":
            namespace[name] = channel.value(extra)
        elif kind in ("module", "import"):
            module_name = extra if kind == "module" else extra[0] if type(extra) is tuple else None
            if type(module_name) is not str:
                raise protocol.ProtocolError("malformed manifest entry")
            if kind == "import" and (len(extra) != 2 or type(extra[1]) is not str):
                raise protocol.ProtocolError("malformed manifest entry")
            if not _importable(module_name):
                continue
            try:
                obj = importlib.import_module(module_name)
                for part in extra[1].split(".") if kind == "import" else ():
                    obj = getattr(obj, part)
            except (Exception, SystemExit):  # not importable here: the name stays unbound
                continue
            namespace[name] = obj
        else:
            raise protocol.ProtocolError(f"unknown manifest kind {kind[:20]!r}")


def failure_kind(exc):
    if isinstance(exc, AssertionError):
        return "assertion"
    if isinstance(exc, Untrusted):
        return "untrusted"
    if isinstance(exc, ProgramExit):
        return "exit"
    return protocol.exception_kind(exc)


def failing_line(exc, filename, source):
    """The deepest line of the test on the exception's traceback, for the report."""
    tb, lineno = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    if lineno is None:
        return ""
    lines = source.splitlines()
    return lines[lineno - 1].strip()[:200] if 0 < lineno <= len(lines) else ""


def serve(control, extra_memory_mb):
    """The judge's loop (a process forked once per worker, kept across runs): for each run,
    receives the request/reply pipes' ends and the job on the `control` socket, runs the
    tests, and sends the records back, ending with `{"t": "end"}`. Each run gets a fresh
    namespace and channel; nothing of the program ever runs here."""
    import marshal
    import socket
    fd = control.fileno()
    pending = []
    last_flush = [time.monotonic()]

    def emit(record):
        # Records are sent in batches: all at once for a quick run, and at least every
        # _FLUSH_S during a long one (so a run that overruns still reports the tests it ran).
        pending.append(json.dumps(record).encode())
        if record["t"] == "end" or time.monotonic() - last_flush[0] > _FLUSH_S:
            data = b"".join(protocol.HEADER.pack(len(r)) + r for r in pending)
            pending.clear()
            last_flush[0] = time.monotonic()
            while data:
                data = data[os.write(fd, data):]

    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 1, 2)
        except OSError:
            return
        if len(fds) != 2:
            return
        req_fd, rep_fd = fds
        try:
            job, tests = marshal.loads(protocol.read_frame(fd))
            _limit_memory(int(job["memory_mb"]) + extra_memory_mb)
            _judge(job, marshal.loads(tests), Channel(req_fd, rep_fd), emit)
        except BaseException as e:  # the judge's own failure: the sandbox's, not the program's
            emit({"t": "judge_error", "msg": f"{type(e).__name__}: {e}"[:500]})
        finally:
            os.close(req_fd)
            os.close(rep_fd)
        emit({"t": "end"})


def _limit_memory(mb):
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mb << 20, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def _judge(job, compiled_tests, channel, emit):
    start = time.perf_counter()
    try:
        reply = channel.receive(0)
    except ProgramGone as e:
        emit({"t": "load", "ok": False, "kind": "runtime", "msg": f"program did not load: {e}",
              "s": time.perf_counter() - start})
        return
    tag = reply[0]
    if tag == "load_error" and len(reply) == 4 and type(reply[2]) is str and type(reply[3]) is str:
        emit({"t": "load", "ok": False, "kind": reply[2][:20], "msg": reply[3][:600],
              "s": time.perf_counter() - start})
        return
    namespace = {"__name__": "__test__", "__builtins__": builtins}
    try:
        if tag != "ready" or len(reply) != 3:
            raise protocol.ProtocolError("malformed first message")
        bind_manifest(reply[2], channel, namespace)
    except (protocol.ProtocolError, ValueError, TypeError) as e:
        emit({"t": "load", "ok": False, "kind": "runtime", "msg": f"program broke the protocol "
              f"while loading: {e}", "s": time.perf_counter() - start})
        return
    if job.get("setup"):
        try:
            exec(compile(job["setup"], "<setup>", "exec"), namespace)
        except BaseException as e:
            emit({"t": "load", "ok": False, "kind": failure_kind(e),
                  "msg": f"setup failed: {type(e).__name__}: {e}"[:600],
                  "s": time.perf_counter() - start})
            return
    emit({"t": "load", "ok": True, "s": time.perf_counter() - start})
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for i, code in enumerate(compiled_tests):
        t0 = time.perf_counter()
        _Test.program_defined, _Test.fault = False, None
        try:
            exec(code, dict(namespace))
            error = _Test.fault  # a fault the test caught still fails it
        except BaseException as e:
            error = _Test.fault or e  # the root cause, if the test turned it into another error
        if error is None:
            emit({"t": "test", "i": i, "ok": True, "s": time.perf_counter() - t0,
                  "pd": _Test.program_defined})
            continue
        msg = f"{type(error).__name__}: {error}"[:500]
        if isinstance(error, (ProgramError, RunFault)):
            msg = str(error)[:500]
        line = failing_line(error, code.co_filename, job["tests"][i])
        if line:
            msg = f"{msg} at: {line}"[:700]
        emit({"t": "test", "i": i, "ok": False, "kind": failure_kind(error), "msg": msg,
              "s": time.perf_counter() - t0, "pd": _Test.program_defined})
        if job.get("stop_on_first_failure"):
            break
    emit({"t": "done"})
