"""Wrong programs that try to forge a pass: from inside their own process (frames, gc, tracing,
closure cells, ctypes, forged records), by evading trust checks (objects that equal anything),
by shadowing what the tests call, or by attacking the judge and the server. None may pass.

Every program here is wrong (`add` subtracts, or returns nothing useful); each must be scored
as not passed, and the worker must still score a correct program correctly afterwards."""

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool

LIMITS = Limits(timeout_s=3.0, memory_mb=512, output_limit_bytes=64 * 1024, max_processes=24)
WRONG = "def add(a, b):\n    return a - b\n"
TESTS = ("assert add(1, 2) == 3", "assert add(2, 2) == 4")


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, limits=LIMITS) as p:
        yield p


def _never_passes(pool, name, program, tests=TESTS):
    result = pool.run(Job(id=name, program=program, tests=tests))
    assert not result.passed, (name, result.status, result.tests)
    assert result.scorable, (name, result.message)  # the program's failure, never masked
    assert not any(t.passed for t in result.tests if "== 3" in tests[t.index]), result.tests
    return result


# --------------------------------------------------------------------------- in-process forgery
IN_PROCESS = {
    "frames": WRONG + """
import sys
def _walk():
    f = sys._getframe()
    while f is not None:
        for k, v in list(f.f_locals.items()):
            if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
                v[:] = ['pass'] * len(v)
            if isinstance(v, dict) and 'tests' in v:
                v['tests'] = ['pass'] * len(v['tests'])
        f = f.f_back
_walk()
""",
    "gc_objects": WRONG + """
import gc
for o in gc.get_objects():
    if isinstance(o, dict) and 'tests' in o and isinstance(o['tests'], list):
        o['tests'] = ['pass'] * len(o['tests'])
    if isinstance(o, list) and o and all(isinstance(x, str) and x.startswith('assert') for x in o):
        o[:] = ['pass'] * len(o)
""",
    "settrace_skips_asserts": WRONG + """
import sys, threading
def tracer(frame, event, arg):
    if event == 'call' and frame.f_code.co_filename.startswith('<test'):
        frame.f_trace = lambda *a: None
        return None
    return tracer
sys.settrace(tracer)
threading.settrace(tracer)
sys.setprofile(lambda frame, event, arg: None)
""",
    "closure_cells": WRONG + """
import gc, types
for o in gc.get_objects():
    if isinstance(o, types.FunctionType) and o.__closure__:
        for cell in o.__closure__:
            try:
                if cell.cell_contents is False:
                    cell.cell_contents = True
            except ValueError:
                pass
""",
    "ctypes_small_int": WRONG + """
import ctypes
# Rewrites the interpreter's cached small int 4 to read as 3 (in this process only).
ctypes.c_ssize_t.from_address(id(4) + 24).value = 3
""",
    "forged_records_every_fd": WRONG + """
import os, json, marshal, struct
frames = []
for rec in ({'t': 'load', 'ok': True, 's': 0}, {'t': 'test', 'i': 0, 'ok': True, 's': 0},
            {'t': 'test', 'i': 1, 'ok': True, 's': 0}, {'t': 'done'}, {'t': 'end'}):
    body = json.dumps(rec).encode()
    frames.append(struct.pack('>I', len(body)) + body)
for msg in (('ready', 0, (('add', 'value', 3),)), ('ok', 1, True, ()), ('ok', 2, True, ())):
    body = marshal.dumps(msg)
    frames.append(struct.pack('>I', len(body)) + body)
for fd in range(3, 1100):
    for f in frames:
        try:
            os.write(fd, f)
        except OSError:
            pass
""",
    "swap_compiled_tests": WRONG + """
import gc, types
noop = compile('pass', '<test 0>', 'exec')
for o in gc.get_objects():
    if isinstance(o, list) and o and all(isinstance(x, types.CodeType) for x in o):
        o[:] = [noop] * len(o)
""",
    "exit_zero_at_load": WRONG + "import sys\nsys.exit(0)\n",
    "os_exit_in_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "kill_every_other_process": WRONG + """
import os, signal
for name in os.listdir('/proc'):
    if name.isdigit() and int(name) != os.getpid():
        try:
            os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass
""",
}


@pytest.mark.parametrize("name", sorted(IN_PROCESS))
def test_in_process_forgery_cannot_pass(pool, name):
    _never_passes(pool, name, IN_PROCESS[name])


def test_reply_that_precedes_its_call_is_just_a_return_value(pool):
    # The program answers the judge's first call before it is asked, with the right sequence
    # number and a value of its choosing: that is only ever a return value, checked by the test.
    program = WRONG + """
import marshal, os, struct
body = marshal.dumps(('ready', 0, (('add', 'call', None),)))
os.write(1001, struct.pack('>I', len(body)) + body)
body = marshal.dumps(('ok', 1, 4, ()))
os.write(1001, struct.pack('>I', len(body)) + body)
import sys
sys.exit(0)
"""
    result = _never_passes(pool, "early_reply", program)
    assert result.status in ("failed", "runtime_error"), result.message


# --------------------------------------------------------------------------- trust-check evasion
EVASION = {
    "mock_any": "from unittest import mock\ndef add(a, b):\n    return mock.ANY\n",
    "magic_mock": "from unittest import mock\ndef add(a, b):\n    return mock.MagicMock()\n",
    "module_builtins_class": "class Eq:\n    __module__ = 'builtins'\n    def __eq__(self, o):\n"
                             "        return True\n    __hash__ = object.__hash__\n"
                             "def add(a, b):\n    return Eq()\n",
    "weakref_proxy": "import weakref\nclass Eq:\n    def __eq__(self, o):\n        return True\n"
                     "KEEP = Eq()\ndef add(a, b):\n    return weakref.proxy(KEEP)\n",
    "mapping_proxy": "import types\nclass D(dict):\n    def __eq__(self, o):\n        return True\n"
                     "def add(a, b):\n    return types.MappingProxyType(D())\n",
    "user_list": "import collections\nclass Eq(list):\n    def __eq__(self, o):\n        return True\n"
                 "def add(a, b):\n    return collections.UserList(Eq())\n",
    "int_subclass_eq": "class I(int):\n    def __eq__(self, o):\n        return True\n"
                       "    __hash__ = int.__hash__\ndef add(a, b):\n    return I(a - b)\n",
    "sys_modules_replaced": WRONG + "import sys, types\nfake = types.ModuleType('builtins')\n"
                            "fake.__dict__.update(vars(__builtins__) if isinstance(__builtins__, dict) "
                            "else vars(__builtins__))\nfake.AssertionError = type('X', (Exception,), {})\n"
                            "sys.modules['builtins'] = fake\nsys.modules['__solution__'] = fake\n"
                            "sys.modules['operator'] = fake\n",
    "truthy_object": "class T:\n    def __bool__(self):\n        return True\n"
                     "def add(a, b):\n    return T()\n",
}


@pytest.mark.parametrize("name", sorted(EVASION))
def test_objects_that_equal_anything_cannot_pass(pool, name):
    tests = TESTS + ("assert add(1, 2)", "assert add(1, 2) != 99")
    result = pool.run(Job(id=name, program=EVASION[name], tests=tests))
    assert not result.passed
    assert not result.tests[0].passed and not result.tests[1].passed, result.tests


# --------------------------------------------------------------------------- shadowing
SHADOWING = [
    ("abs", "def abs(x):\n    return 0\ndef f(x):\n    return x * 3\n",
     "assert abs(f(1) - 2.5) < 1e-6"),
    ("len", "len = lambda x: 3\ndef f():\n    return [1]\n", "assert len(f()) == 3"),
    ("sorted", "def sorted(x, **k):\n    return [1, 2, 3]\ndef f():\n    return [3, 3]\n",
     "assert sorted(f()) == [1, 2, 3]"),
    ("set", "set = lambda x=(): {1, 2}\ndef f():\n    return [5]\n", "assert set(f()) == {1, 2}"),
    ("math_isclose", "import math\nmath.isclose = lambda *a, **k: True\ndef f(x):\n    return 0.0\n",
     "import math\nassert math.isclose(f(1), 2.5)"),
    # The test relies on the program's `import math`: it still gets the judge's own module.
    ("math_module_of_the_program", "import math\nmath.isclose = lambda *a, **k: True\n"
     "def f(x):\n    return 0.0\n", "assert math.isclose(f(1), 2.5)"),
    ("builtins_module", "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.len = lambda x: 3\n"
     "def f():\n    return [1]\n", "assert len(f()) == 3 and abs(-1) == 0"),
    # A wrong entry point that claims to be the stdlib function solving the task is still run
    # as the program's own code.
    ("claims_to_be_stdlib", "import math\ndef f(a, b):\n    return 1\nf.__module__ = 'math'\n"
     "f.__qualname__ = 'gcd'\nmath.gcd = f\n", "assert f(12, 8) == 4"),
    ("operator_eq", "import operator\noperator.eq = lambda a, b: True\ndef f():\n    return 1\n",
     "import operator\nassert operator.eq(f(), 2)"),
]


@pytest.mark.parametrize("name, program, test", SHADOWING, ids=[s[0] for s in SHADOWING])
def test_shadowing_what_the_tests_call_changes_nothing(pool, name, program, test):
    result = pool.run(Job(id=name, program=program, tests=(test,)))
    assert not result.passed, (name, result.tests)


# --------------------------------------------------------------------------- the judge and server
def test_judge_and_server_memory_and_tracing_are_out_of_reach(pool):
    # The program reports which other processes it could write the memory of or ptrace; the
    # judge and the server must not be among them (they are non-dumpable).
    program = """
import ctypes, os
def reachable():
    me = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f'/proc/{pid}/mem', 'r+b'):
                found.append(('mem', pid))
        except OSError:
            pass
        try:
            os.listdir(f'/proc/{pid}/fd')
            found.append(('fd', pid))
        except OSError:
            pass
        if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
            found.append(('ptrace', pid))
            libc.ptrace(17, pid, 0, 0)
    return found
"""
    result = pool.run(Job(id="reach", program=program, tests=("assert reachable() == []",)))
    assert result.passed, result.message


def test_wrong_program_after_hostile_ones_still_fails_and_right_one_passes(pool):
    for name in ("ctypes_small_int", "forged_records_every_fd", "kill_every_other_process"):
        pool.run(Job(id=name, program=IN_PROCESS[name], tests=TESTS))
    right = "def add(a, b):\n    return a + b\n"
    for _ in range(4):  # whichever worker it lands on
        assert pool.run(Job(id="right", program=right, tests=TESTS)).passed
        assert not pool.run(Job(id="wrong", program=WRONG, tests=TESTS)).passed


# --------------------------------------------------------------------------- faults tests catch
CAUGHT = {
    "exit_in_call": "import os\ndef f(x):\n    os._exit(0)\n",
    "sys_exit_in_call": "import sys\ndef f(x):\n    sys.exit(0)\n",
    "keyboard_interrupt": "def f(x):\n    raise KeyboardInterrupt\n",
    "unsendable_return": "def f(x):\n    y = []\n    for _ in range(5000):\n        y = [y]\n    return y\n",
    "oversized_return": "def f(x):\n    return 'x' * (70 << 20)\n",
    "garbage_reply": "import os\ndef f(x):\n    os.write(1001, b'\\x00\\x00\\x00\\x03abc')\n    return 0\n",
}


@pytest.mark.parametrize("name", sorted(CAUGHT))
@pytest.mark.parametrize("handler", ["except Exception", "except BaseException", "except"])
def test_faults_a_test_catches_still_fail_it(pool, name, handler):
    # Tests that expect an exception must not pass because the program died, exited or broke
    # the protocol in the call they wrap. (With a bare `except`, the test's own `assert False`
    # would be caught too: these tests pass for any program that answers normally.)
    test = f"try:\n    f(-1)\n    assert False\n{handler}:\n    pass"
    result = pool.run(Job(id=name, program=CAUGHT[name], tests=(test,)))
    assert not result.passed, (name, handler, result.tests)
