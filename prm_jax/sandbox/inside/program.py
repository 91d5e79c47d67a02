"""The program process: loads the untrusted program and answers the judge's calls.

Assert runs: the zygote forks this process from its warm interpreter (which never saw a job),
the server hands it the job, the run's limits are applied and `serve` runs. It loads the program as a real module (`__solution__`, registered in
`sys.modules` and written to `solution.py`, so `multiprocessing` can pickle its functions),
runs the job's setup in it, sends a manifest of the names it defines and then answers requests
until the judge is done. It holds only its own ends of two pipes: it reads requests and writes
replies; nothing it writes reaches anyone but the judge, which reads it as the reply to the
call in flight.

IO runs: the server execs a fresh interpreter with `LAUNCHER`, which runs `main.py` as a real
`__main__` module, so the run ends with a normal interpreter shutdown (non-daemon threads
joined, `atexit` handlers run, buffers flushed).
"""

import builtins
import os
import sys
import types

from . import protocol

SOLUTION_NAME = "__solution__"
MAX_MESSAGE = 500

# Exit statuses of an IO run that say what went wrong before the program's own code ran.
EXIT_SYNTAX, EXIT_MEMORY = 3, 4
LAUNCHER = """
import sys, types, traceback
path = sys.argv[1]
try:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        code = compile(f.read(), path, "exec")
except (SyntaxError, ValueError) as e:
    traceback.print_exc()
    sys.exit(3)
main = types.ModuleType("__main__")
main.__file__ = path
main.__builtins__ = __builtins__
sys.modules["__main__"] = main
sys.argv = [path]
del path, types
try:
    exec(code, main.__dict__)
except MemoryError:
    traceback.print_exc()
    sys.exit(4)
"""


def describe(exc):
    """(type name, message, name of its nearest builtin exception base) of an exception
    raised by program code, defensively."""
    try:
        name = type(exc).__name__
        name = name if isinstance(name, str) else "Exception"
    except BaseException:
        name = "Exception"
    try:
        message = str(exc)
        message = message if type(message) is str else ""
    except BaseException:
        message = ""
    base = "Exception"
    for klass in type.__dict__["__mro__"].__get__(type(exc)):
        if getattr(builtins, klass.__name__, None) is klass:
            base = klass.__name__
            break
    return str.__str__(name)[:100], str.__str__(message)[:MAX_MESSAGE], base


def _kind_of_load_error(exc):
    if isinstance(exc, (SyntaxError, ValueError)) and getattr(exc, "_sbx_compile", False):
        return "syntax"
    return protocol.exception_kind(exc)


_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))


class _Handles:
    """Objects that stay in this process, referred to by the judge with integer ids."""

    def __init__(self, namespace):
        self.namespace = namespace
        self.objects = {}
        self.by_id = {}

    def register(self, obj):
        if type(obj) in _DICT_VIEWS:  # iterated (list(), sorted(), set()) by tests: an iterator
            obj = iter(obj)
        key = id(obj)
        hid = self.by_id.get(key)
        if hid is None:
            hid = len(self.objects) + 1
            self.objects[hid] = obj
            self.by_id[key] = hid
        if isinstance(obj, type):
            kind = "class"
        elif hasattr(type(obj), "__next__"):
            kind = "iterator"
        elif callable(obj):
            kind = "callable"
        else:
            kind = "object"
        try:
            name = type.__dict__["__qualname__"].__get__(obj if kind == "class" else type(obj))
        except Exception:
            name = "object"
        return (Ellipsis, hid, str(name)[:200], kind)

    def resolve(self, hid, name, kind):
        if type(hid) is str:
            return self.namespace[hid]
        if hid not in self.objects:
            raise LookupError(f"unknown handle {hid}")
        return self.objects[hid]


_STDLIB = frozenset(sys.stdlib_module_names) | {"typing"}


def _is_stdlib(module):
    return module.partition(".")[0] in _STDLIB


def _manifest_entry(name, value, handles):
    """How the judge should bind `name`: its own import, a proxy, or the value as data."""
    if isinstance(value, types.ModuleType):
        return ("module", name, getattr(value, "__name__", name))
    module = getattr(value, "__module__", None)
    # Only classes, typing constructs and non-callables are rebound to the judge's own copy:
    # a function the tests call (the entry point above all) always runs as the program's.
    judge_copy_ok = isinstance(value, type) or module == "typing" or not callable(value)
    if (judge_copy_ok and type(module) is str and module != SOLUTION_NAME
            and _is_stdlib(module)):
        attr = getattr(value, "__qualname__", None)
        for candidate in (attr, name):
            if type(candidate) is str and _lookup(sys.modules.get(module), candidate) is value:
                return ("import", name, (module, candidate))
    if isinstance(value, type):
        return ("class", name, None)
    if callable(value):
        return ("call", name, None)
    try:
        data = protocol.to_wire(value, handles.register)
        if len(protocol.dumps(data)) > protocol.MAX_FRAME // 8:
            raise ValueError("too large")
    except (ValueError, TypeError, RecursionError, MemoryError):
        return ("value", name, handles.register(value))
    return ("value", name, data)


def _lookup(obj, dotted):
    for part in dotted.split("."):
        if obj is None:
            return None
        try:
            obj = getattr(obj, part)
        except Exception:
            return None
    return obj


def manifest(namespace, handles, skip):
    entries = []
    for name, value in list(namespace.items()):
        if name.startswith("__") or name in skip:
            continue
        try:
            entries.append(_manifest_entry(name, value, handles))
        except Exception:
            entries.append(("value", name, handles.register(value)))
    return tuple(entries)


def _state(obj):
    """What the judge compares program-defined objects by: their instance attributes (all but
    dunder names), from `__dict__` and `__slots__`."""
    try:
        attrs = dict(object.__getattribute__(obj, "__dict__"))
    except (AttributeError, TypeError):
        attrs = {}
    for klass in type(obj).__mro__:
        for slot in klass.__dict__.get("__slots__", ()) or ():
            if isinstance(slot, str) and slot not in attrs:
                try:
                    attrs[slot] = getattr(obj, slot)
                except AttributeError:
                    pass
    return {k: v for k, v in attrs.items()
            if isinstance(k, str) and not (k.startswith("__") and k.endswith("__"))}


def _builtins_restorer():
    """Undoes the program's rebinding of builtins (`builtins.type = ...`) before this runner's
    own code relies on them again; the program's functions see them restored too."""
    namespace = builtins.__dict__
    snapshot = dict(namespace)

    def restore():
        # Usually nothing changed: one C-level comparison (identical values compare equal
        # without calling anything) instead of a Python loop over every builtin per call.
        try:
            if len(namespace) == len(snapshot) and namespace == snapshot:
                return
        except BaseException:  # a replaced builtin whose __eq__ fails
            pass
        for key, value in snapshot.items():
            if namespace.get(key) is not value:
                namespace[key] = value
    return restore


def serve(job, req_fd, rep_fd, rundir):
    """Runs in the forked program process. Never returns."""
    _read, _write, _exit, _dumps = os.read, os.write, os._exit, protocol.dumps
    restore_builtins = _builtins_restorer()
    handles = None

    def reply(msg):
        try:
            body = _dumps(msg)
        except ValueError as e:  # nested too deeply for marshal
            body = _dumps(("error", msg[1], f"return value cannot be sent: {e}"))
        if len(body) > protocol.MAX_FRAME:
            body = _dumps(("error", msg[1], f"return value of {len(body)} bytes exceeds the "
                                            f"limit of {protocol.MAX_FRAME}"))
        try:
            protocol.write_frame(rep_fd, body, _write)
        except OSError:
            _exit(70)

    path = os.path.join(rundir, "solution.py")
    module = types.ModuleType(SOLUTION_NAME)
    module.__file__ = path
    module.__builtins__ = builtins
    try:  # raw writes: a text-mode open() costs a short run ~0.3 ms of copy-on-write faults
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = job["program"].encode("utf-8", "surrogateescape")
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
    except OSError:
        pass
    sys.modules[SOLUTION_NAME] = module
    handles = _Handles(module.__dict__)
    sys.path.insert(0, rundir)
    try:
        try:
            code = compile(job["program"], path, "exec")
        except BaseException as e:
            e._sbx_compile = True
            raise
        exec(code, module.__dict__)
        if job.get("setup"):
            exec(compile(job["setup"], "<setup>", "exec"), module.__dict__)
        restore_builtins()
        entries = manifest(module.__dict__, handles, set(dir(builtins)))
    except BaseException as e:
        restore_builtins()
        try:
            kind = _kind_of_load_error(e)
        except BaseException:
            kind = "runtime"
        name, message, _ = describe(e)
        reply(("load_error", 0, kind, f"{name}: {message}"))
        _exit(0)
    reply(("ready", 0, entries))
    namespace = module.__dict__
    requests = protocol.FrameReader(req_fd, read=_read)
    while True:
        try:
            body = requests.next()
        except (protocol.ProtocolError, OSError):
            _exit(0)
        if body is None:
            _exit(0)
        request = protocol.loads(body)
        op, seq = request[0], request[1]
        try:
            result, mutated = _dispatch(op, request, namespace, handles, b"." in body)
        except BaseException as e:
            restore_builtins()
            reply(("raise", seq) + describe(e))
            continue
        restore_builtins()
        try:
            wire = protocol.to_wire(result, handles.register)
            changed = tuple((i, protocol.to_wire(a, handles.register)) for i, a in mutated)
        except (ValueError, TypeError, RecursionError, MemoryError) as e:
            reply(("error", seq, f"return value cannot be sent: {describe(e)[1]}"))
            continue
        reply(("ok", seq, wire, changed))


def _snapshot(value):
    try:
        return protocol.dumps(value)
    except (ValueError, TypeError):
        return None


def _dispatch(op, request, namespace, handles, may_have_handles):
    """Performs one request; returns (result, [(arg index, arg) of changed mutable args]).

    `may_have_handles`: the request's bytes contain marshal's Ellipsis code, so its arguments
    may refer to objects of this process (else they are plain data already)."""
    if op == "call":
        _, _, target, args, kwargs = request
        fn = namespace[target] if isinstance(target, str) else handles.objects[target]
        if may_have_handles:
            args = protocol.check_value(args, handles.resolve)
            kwargs = protocol.check_value(kwargs, handles.resolve)
        before = [(i, a, _snapshot(a)) for i, a in enumerate(args) if type(a) in (list, dict, set)]
        result = fn(*args, **kwargs)
        return result, [(i, a) for i, a, snap in before if _snapshot(a) != snap]
    if op == "getattr":
        return getattr(handles.objects[request[2]], request[3]), []
    if op == "state":
        obj = handles.objects[request[2]]
        return _state(obj), []
    if op == "next":
        return next(handles.objects[request[2]]), []
    if op == "global":
        return namespace[request[2]], []
    raise ValueError(f"unknown request {op!r}")
