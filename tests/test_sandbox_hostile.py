"""Hostile programs: each is contained, scored as not passed (unless it genuinely passes), and
leaves no process behind. Every case is bounded: short timeouts, memory caps far below the
machine's, process caps of a few dozen, and only loopback networking."""

import os
import socket
import threading
import time

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool

LIMITS = Limits(timeout_s=2.0, memory_mb=256, output_limit_bytes=64 * 1024, max_processes=24)
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ("assert add(1, 2) == 3", "assert add(-1, 1) == 0")
WRONG_TESTS = ("assert add(1, 2) == 4",)


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, limits=LIMITS) as p:
        yield p
    # After close: nothing owned by the pool's uids survives.
    if os.geteuid() == 0:
        time.sleep(0.2)
        assert _uid_processes(p) == [], "processes survived pool.close()"


def _uid_processes(p):
    uids = {p._uid(i) for i in range(p.num_workers)}
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    found.append(int(name))
            except FileNotFoundError:
                pass
    return found


def _assert_clean(pool):
    """Only the workers' own processes remain: outer bwrap, the server (pid 1 of the
    namespace), the zygote, the judge and the next run's pre-forked program process."""
    if os.geteuid() != 0:
        return
    deadline = time.monotonic() + 3
    while True:
        # A server may end right after replying (a run killed its zygote); the pool reaps it.
        pool.prune()
        procs = _uid_processes(pool)
        if len(procs) <= 5 * pool.num_workers and not _zombie_children():
            break
        assert time.monotonic() < deadline, (f"leftover processes: {len(procs)}, unreaped "
                                             f"children of the test process: {_zombie_children()}")
        time.sleep(0.05)


def _zombie_children():
    me = str(os.getpid())
    zombies = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = open(f"/proc/{name}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z" and fields[1] == me:
                zombies.append(int(name))
    return zombies


# Writes a forged "all tests passed" record stream to every descriptor, then leaves.
FAKE_RECORDS = """import os
lines = [b"(('t', 'load'), ('ok', True))\\n", b"(('t', 'test'), ('i', 0), ('ok', True))\\n",
         b"(('t', 'done'),)\\n", b"(('t', 'sentinel'), ('v', '0' * 32))\\n"]
for fd in range(3, 64):
    for line in lines:
        try:
            os.write(fd, line)
        except OSError:
            pass
os._exit(0)
"""

# (name, program, tests, allowed statuses)
CASES = [
    ("fork_bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
     ADD_TESTS, {"timeout"}),
    ("fork_bomb_in_test", ADD.replace("return a + b", "import os\n    while True:\n        try:\n"
                                      "            os.fork()\n        except OSError:\n            pass"),
     ADD_TESTS, {"timeout"}),
    ("memory_bomb_at_once", "x = bytearray(8 * 1024 ** 3)\n" + ADD, ADD_TESTS, {"memory"}),
    ("memory_bomb_growing", "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n" + ADD,
     ADD_TESTS, {"memory"}),
    ("infinite_loop_at_load", "while True:\n    pass\n" + ADD, ADD_TESTS, {"timeout"}),
    ("infinite_loop_in_call", ADD.replace("return a + b", "while True:\n        pass"), ADD_TESTS,
     {"timeout"}),
    ("sleep_forever", "import time\ntime.sleep(1000)\n" + ADD, ADD_TESTS, {"timeout"}),
    ("huge_output_loop", "while True:\n    print('x' * 1000)\n" + ADD, ADD_TESTS, {"output_limit"}),
    ("huge_output_single_write", "import sys\nsys.stdout.write('y' * 10 ** 7)\nsys.stdout.flush()\n" + ADD,
     ADD_TESTS, {"output_limit"}),
    ("huge_file", "with open('big.bin', 'wb') as f:\n    f.write(b'z' * 10 ** 8)\n" + ADD, ADD_TESTS,
     {"output_limit", "runtime_error", "memory"}),
    ("sys_exit_before_tests", "import sys\n" + ADD + "sys.exit(0)\n", WRONG_TESTS, {"runtime_error"}),
    ("exit_builtin_before_tests", ADD + "exit()\n", WRONG_TESTS, {"runtime_error"}),
    ("os_exit_before_tests", "import os\n" + ADD + "os._exit(0)\n", WRONG_TESTS, {"runtime_error"}),
    ("os_exit_inside_test", "import os\ndef add(a, b):\n    os._exit(0)\n", WRONG_TESTS,
     {"runtime_error"}),
    ("sys_exit_inside_test", "import sys\ndef add(a, b):\n    sys.exit(0)\n", WRONG_TESTS,
     {"failed", "runtime_error"}),
    ("always_equal_object", "class A:\n    def __eq__(self, o):\n        return True\n"
     "def add(a, b):\n    return A()\n", WRONG_TESTS, {"failed"}),
    ("always_equal_int_subclass", "class A(int):\n    def __eq__(self, o):\n        return True\n"
     "    __hash__ = int.__hash__\ndef add(a, b):\n    return A(0)\n", WRONG_TESTS, {"failed"}),
    ("always_equal_inside_list", "class A:\n    def __eq__(self, o):\n        return True\n"
     "def add(a, b):\n    return [A()]\n", ("assert add(1, 2) == [4]",), {"failed"}),
    ("always_equal_via_generator", "class A:\n    def __eq__(self, o):\n        return True\n"
     "def add(a, b):\n    return (A() for _ in range(1))\n", ("assert list(add(1, 2)) == [4]",),
     {"failed"}),
    ("always_true_bool", "class T:\n    def __bool__(self):\n        return True\n"
     "def add(a, b):\n    return T()\n", ("assert add(1, 2)",), {"failed"}),
    ("arithmetic_laundering", "class Z:\n    def __sub__(self, o):\n        return 0.0\n"
     "def add(a, b):\n    return Z()\n", ("assert abs(add(1, 2) - 4) < 1e-6",), {"failed"}),
    ("patch_builtins", "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.bool = "
     "lambda x: True\nbuiltins.AssertionError = type('E', (Exception,), {})\n" + ADD.replace(
         "a + b", "a - b"), ADD_TESTS, {"failed"}),
    ("patch_builtins_mid_test", "import builtins\nclass A:\n    def __eq__(self, o):\n        return True\n"
     "def add(a, b):\n    builtins.type = lambda x: int\n    builtins.isinstance = lambda *a: False\n"
     "    builtins.id = lambda x: 0\n    return A()\n", WRONG_TESTS, {"failed"}),
    ("patch_os_write_and_json", "import os, json\nos.write = lambda fd, b: len(b)\njson.dumps = "
     "lambda o: '{\"t\": \"test\", \"i\": 0, \"ok\": true}'\n" + ADD.replace("a + b", "a - b"),
     ADD_TESTS, {"failed"}),
    ("patch_operator_eq", "import operator\noperator.eq = lambda a, b: True\n" + ADD.replace(
        "a + b", "a - b"), ADD_TESTS, {"failed"}),
    ("print_fake_markers", ADD.replace("a + b", "a - b") + "print('{\"t\": \"done\"}')\n"
     "print('ALL TESTS PASSED')\n", ADD_TESTS, {"failed"}),
    ("fake_records_to_every_fd", FAKE_RECORDS, WRONG_TESTS, {"runtime_error"}),
    # Under bubblewrap the parent is the server, pid 1 of the namespace: the signal is ignored.
    ("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + ADD, WRONG_TESTS,
     {"runtime_error", "failed"}),
    ("kill_everything", "import os, signal\nos.kill(-1, signal.SIGKILL)\n" + ADD, ADD_TESTS,
     {"runtime_error"}),
    ("stop_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nimport time\n"
     "time.sleep(100)\n" + ADD, ADD_TESTS, {"runtime_error", "timeout"}),
    ("close_all_fds", "import os\nos.closerange(0, 4096)\n" + ADD, ADD_TESTS, {"runtime_error"}),
    ("deep_recursion", "def add(a, b):\n    return add(a, b) + 1\n", ADD_TESTS,
     {"runtime_error", "failed"}),
    ("deep_recursion_raised_limit", "import sys\nsys.setrecursionlimit(10 ** 7)\n"
     "def add(a, b):\n    return add(a, b) + 1\n", ADD_TESTS, {"runtime_error", "memory", "failed", "timeout"}),
    ("ignore_sigterm_and_loop", "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, "
     "signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n", ADD_TESTS,
     {"timeout"}),
    ("setuid_root", "import os\nos.setuid(0)\n" + ADD, ADD_TESTS, {"runtime_error"}),
    ("fd_exhaustion", "import os\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(100000)]\n"
     + ADD, ADD_TESTS, {"runtime_error"}),
    ("keyboard_interrupt_in_call", "def add(a, b):\n    raise KeyboardInterrupt\n", ADD_TESTS,
     {"runtime_error"}),
    ("syntax_error", "def add(a, b)\n    return a + b\n", ADD_TESTS, {"syntax_error"}),
    ("null_bytes", "def add(a, b):\n    return a + b\x00\n", ADD_TESTS, {"syntax_error"}),
    ("fill_tmpfs", "import os\nfor i in range(200):\n    try:\n        with open(f'/tmp/f{i}', 'wb') as f:"
     "\n            f.write(b'x' * 60000)\n    except OSError:\n        break\n" + ADD.replace("a + b", "a - b"),
     ADD_TESTS, {"failed"}),
]


@pytest.mark.parametrize("name, program, tests, allowed", CASES, ids=[c[0] for c in CASES])
def test_hostile_program_is_contained(pool, name, program, tests, allowed):
    result = pool.run(Job(id=name, program=program, tests=tests))
    assert result.status in allowed, (result.status, result.message)
    assert not result.passed
    _assert_clean(pool)


def test_enough_hostile_cases():
    assert len(CASES) + 6 >= 30  # plus the dedicated tests below


def test_background_processes_do_not_outlive_the_run(pool):
    program = ("import os, subprocess, time\n"
               "if os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\n"
               "subprocess.Popen(['sleep', '30'], start_new_session=True)\n" + ADD)
    result = pool.run(Job(id="daemons", program=program, tests=ADD_TESTS))
    assert result.status == "passed", result.message  # a genuine pass stays a pass
    _assert_clean(pool)


def test_files_outside_the_sandbox_are_invisible(pool, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    target = tmp_path / "pwned.txt"
    program = (f"def read():\n    try:\n        return open({str(secret)!r}).read()\n"
               f"    except OSError:\n        return 'denied'\n"
               f"def write():\n    try:\n        open({str(target)!r}, 'w').write('x')\n"
               f"        return 'written'\n    except OSError:\n        return 'denied'\n"
               "def etc():\n    import os\n    return [p for p in ('/etc/passwd', '/root', '/home', "
               "'/work') if os.path.exists(p)]\n")
    result = pool.run(Job(id="files", program=program,
                          tests=("assert read() == 'TOPSECRET'", "assert write() == 'written'",
                                 "assert etc() != []")))
    assert not target.exists()
    if pool.level == "bwrap":
        assert result.num_passed == 0, result.tests
    else:  # weaker levels: documented, the unprivileged uid still cannot write the host's files
        assert not result.tests[1].passed


def test_network_to_host_loopback_is_blocked(pool):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []
    finished = threading.Event()

    def accept_loop(deadline=time.monotonic() + 10):
        while time.monotonic() < deadline and not finished.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
                conn.close()
            except socket.timeout:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    program = ("import socket\ndef connect():\n    try:\n"
               f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
               "        return 'connected'\n    except OSError as e:\n        return 'blocked'\n")
    result = pool.run(Job(id="net", program=program, tests=("assert connect() == 'connected'",)))
    time.sleep(0.3)
    finished.set()
    thread.join()
    server.close()
    assert not result.passed
    assert accepted == []


def test_state_does_not_leak_between_runs(pool):
    writer = ("import os\nopen('/tmp/leak', 'w').write('from a previous run')\n"
              "open('leak_here', 'w').write('x')\n" + ADD)
    reader = ("import os\ndef leaked():\n    return os.path.exists('/tmp/leak') or "
              "os.path.exists('leak_here')\n")
    for _ in range(3):  # whichever worker it lands on
        assert pool.run(Job(id="w", program=writer, tests=ADD_TESTS)).passed
    results = [pool.run(Job(id="r", program=reader, tests=("assert leaked() is False",)))
               for _ in range(4)]
    if pool.level == "bwrap":
        assert all(r.passed for r in results), [r.message for r in results]


def test_io_programs_are_contained(pool):
    cases = [
        ("import sys\nprint(int(input()) * 2)\nsys.exit(1)\n", "runtime_error"),
        ("input()\ninput()\n", "runtime_error"),
        ("while True:\n    pass\n", "timeout"),
        ("while True:\n    print('x' * 100)\n", "output_limit"),
        ("x = bytearray(2 * 1024 ** 3)\n", "memory"),
        ("import os\nos.kill(os.getppid(), 9)\n", ("runtime_error", "failed")),
        ("print(int(input()) * 2, '  ')\n\n", "passed"),
    ]
    for program, status in cases:
        result = pool.run(Job(id="io", program=program, io=(("21\n", "42\n"),), timeout_s=1.5))
        assert result.status in ((status,) if isinstance(status, str) else status), (
            program, result.status, result.message)
        _assert_clean(pool)


def test_host_is_unaffected_after_the_suite(pool):
    # The machine still starts processes and runs sandboxed jobs normally.
    import subprocess
    assert subprocess.run(["true"], timeout=10).returncode == 0
    assert pool.run(Job(id="ok", program=ADD, tests=ADD_TESTS)).passed


def test_killing_the_sandbox_at_load_is_always_the_programs_failure(pool):
    """The program process shares its worker's CPU and may run the moment it has its job: a
    program that kills every process it can (judge and zygote included) must never turn its
    failure into an infrastructure error, however the race falls."""
    program = "import os, signal\nos.kill(-1, signal.SIGKILL)\n" + ADD
    for i in range(20):
        result = pool.run(Job(id=f"kill{i}", program=program, tests=ADD_TESTS))
        assert result.status == "runtime_error", (i, result.status, result.message)
    _assert_clean(pool)
