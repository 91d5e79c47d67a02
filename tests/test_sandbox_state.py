"""Nothing survives from one run to the next, a program cannot turn its failure into an
infrastructure error, and no record a program writes can crash the host."""

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool

LIMITS = Limits(timeout_s=3.0, memory_mb=512, output_limit_bytes=64 * 1024, max_processes=24)
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TESTS = ("assert add(1, 2) == 3",)


@pytest.fixture(scope="module")
def pool():
    # One worker: every run lands on the same server, the worst case for leaks.
    with SandboxPool(workers=1, limits=LIMITS) as p:
        yield p


LEAVE_STATE = """
import ctypes, os
def _try(fn):
    try:
        fn()
    except Exception:
        pass
for path in ('/leak', '/dev/leak', '/dev/shm/leak', '/tmp/leak', 'leak'):
    _try(lambda: open(path, 'w').write('x'))
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.restype = ctypes.c_int
shm = libc.shmget(0x5EED, 4096, 0o1666)  # IPC_CREAT | 0666
if shm >= 0:
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shm, None, 0)
    if addr not in (None, ctypes.c_void_p(-1).value):
        ctypes.memmove(addr, b'LEAKED', 6)
libc.semget(0x5EEE, 1, 0o1666)
libc.msgget(0x5EEF, 0o1666)
"""

FIND_STATE = """
import ctypes, os
def leaks():
    found = [p for p in ('/leak', '/dev/leak', '/dev/shm/leak', '/tmp/leak', 'leak')
             if os.path.exists(p)]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.shmget(0x5EED, 0, 0) >= 0:
        found.append('sysv shm')
    if libc.semget(0x5EEE, 0, 0) >= 0:
        found.append('sysv sem')
    if libc.msgget(0x5EEF, 0) >= 0:
        found.append('sysv msg')
    return found
"""


def test_no_files_or_ipc_survive_a_run(pool):
    if pool.level != "bwrap":
        pytest.skip("only bubblewrap isolates the filesystem and IPC")
    for _ in range(2):
        assert pool.run(Job(id="writer", program=LEAVE_STATE + RIGHT, tests=TESTS)).passed
        result = pool.run(Job(id="reader", program=FIND_STATE, tests=("assert leaks() == []",)))
        assert result.passed, result.message


def test_root_and_dev_are_read_only(pool):
    if pool.level != "bwrap":
        pytest.skip("only bubblewrap makes / read-only")
    program = ("import os\ndef writable():\n    out = []\n"
               "    for p in ('/x', '/dev/x', '/usr/x', '/proc/x'):\n        try:\n"
               "            open(p, 'w').close()\n            out.append(p)\n"
               "        except OSError:\n            pass\n    return out\n")
    assert pool.run(Job(id="ro", program=program, tests=("assert writable() == []",))).passed


def test_server_memory_cannot_be_changed_to_flip_later_verdicts(pool):
    # Writes into every process whose memory it can open; afterwards a wrong program must still
    # fail and a right one pass.
    program = RIGHT + """
import os
for name in os.listdir('/proc'):
    if name.isdigit() and int(name) != os.getpid():
        try:
            with open(f'/proc/{name}/mem', 'r+b') as f:
                f.seek(0x400000)
                f.write(b'\\xcc' * 64)
        except OSError:
            pass
"""
    pool.run(Job(id="poke", program=program, tests=TESTS))
    assert not pool.run(Job(id="wrong", program=WRONG, tests=TESTS)).passed
    assert pool.run(Job(id="right", program=RIGHT, tests=TESTS)).passed


SCRATCH = {
    "chmod_cwd": "import os\nos.chmod('.', 0)\n",
    "chmod_tmp_tree": "import os\nos.makedirs('/tmp/a/b/c')\nopen('/tmp/a/b/c/f', 'w').write('x')\n"
                      "for p in ('/tmp/a/b/c', '/tmp/a/b', '/tmp/a'):\n    os.chmod(p, 0)\n",
    "fill_scratch": "import os\ntry:\n    with open('fill.bin', 'wb') as f:\n"
                    "        for _ in range(200):\n            f.write(b'x' * (1 << 20))\nexcept OSError:\n    pass\n",
    "fill_shm": "try:\n    with open('/dev/shm/fill', 'wb') as f:\n"
                "        for _ in range(200):\n            f.write(b'x' * (1 << 20))\nexcept OSError:\n    pass\n",
    "delete_cwd": "import os, shutil\nshutil.rmtree(os.getcwd(), ignore_errors=True)\n",
    "symlink_cwd": "import os\nos.symlink('/usr', 'u')\nos.mkdir('d')\nos.chmod('d', 0)\n",
}


@pytest.mark.parametrize("name", sorted(SCRATCH))
def test_damaging_the_scratch_is_an_ordinary_failure(pool, name):
    result = pool.run(Job(id=name, program=SCRATCH[name] + WRONG, tests=TESTS))
    assert result.status == "failed", (result.status, result.message)
    assert result.scorable
    # ... and the next run, on the same worker, is unaffected.
    assert pool.run(Job(id="after", program=RIGHT, tests=TESTS)).passed


REPLY = "import marshal, os, struct\n"
MALFORMED = {
    "garbage_on_reply_fd": REPLY + "os.write(1001, b'\\xff' * 64)\n",
    "huge_length_prefix": REPLY + "os.write(1001, struct.pack('>I', 2 ** 31) + b'x')\n",
    "truncated_frame": REPLY + "os.write(1001, struct.pack('>I', 100) + b'abc')\nos.close(1001)\n",
    "bad_marshal": REPLY + "os.write(1001, struct.pack('>I', 3) + b'\\x00\\x01\\x02')\n",
    "code_object": REPLY + "b = marshal.dumps(('ready', 0, (('add', 'value', (lambda: 0).__code__),)))\n"
                   "os.write(1001, struct.pack('>I', len(b)) + b)\n",
    "wrong_sequence": REPLY + "b = marshal.dumps(('ready', 7, ()))\nos.write(1001, struct.pack('>I', len(b)) + b)\n",
    "not_a_tuple": REPLY + "b = marshal.dumps({'t': 'done'})\nos.write(1001, struct.pack('>I', len(b)) + b)\n",
    "json_records": "import os\nfor fd in range(3, 1100):\n    try:\n"
                    "        os.write(fd, b'{\"t\": \"done\"}\\n' * 10)\n    except OSError:\n        pass\n",
    "close_reply_fd": "import os\nos.close(1001)\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_records_fail_the_run_with_a_reason(pool, name):
    result = pool.run(Job(id=name, program=MALFORMED[name] + WRONG, tests=TESTS))
    assert not result.passed
    assert result.scorable, result.message
    assert result.message


def test_malformed_reply_mid_call_and_oversized_value(pool):
    program = ("import marshal, os, struct\n"
               "def add(a, b):\n    os.write(1001, struct.pack('>I', 5) + b'\\x00' * 5)\n    return 3\n"
               "def big():\n    return 'x' * (80 << 20)\n"
               "def deep():\n    x = []\n    for _ in range(5000):\n        x = [x]\n    return x\n")
    result = pool.run(Job(id="mid", program=program,
                          tests=("assert add(1, 2) == 3", "assert add(1, 2) == 3")))
    assert not result.passed and result.scorable
    assert "malformed" in result.tests[0].message or "undecodable" in result.tests[0].message
    result = pool.run(Job(id="big", program=program, tests=("assert len(big()) > 0",)))
    assert not result.passed and result.scorable and "limit" in result.message, result.message
    result = pool.run(Job(id="deep", program=program, tests=("assert deep() is not None",)))
    assert not result.passed and result.scorable and "cannot be sent" in result.message, result.message
    assert pool.run(Job(id="right", program=RIGHT, tests=TESTS)).passed


def test_memory_limit_applies_to_the_run_as_a_whole(pool):
    # Three processes each well under the limit, together over it.
    program = ("import os, time\nkids = []\nfor _ in range(3):\n    pid = os.fork()\n"
               "    if pid == 0:\n        x = bytearray(200 << 20)\n        for i in range(0, len(x), 4096):\n"
               "            x[i] = 1\n        time.sleep(5)\n        os._exit(0)\n    kids.append(pid)\n"
               "time.sleep(2.5)\n" + RIGHT)
    result = pool.run(Job(id="kids", program=program, tests=TESTS))
    assert result.status == "memory", (result.status, result.message)


def test_stopping_the_judge_on_the_way_out_does_not_fail_the_next_run(pool):
    # A background process stops every other process of the sandbox, repeatedly, until the
    # run is torn down; the next (correct) program must still pass, in normal time.
    program = RIGHT + """
import os, signal, time
if os.fork() == 0:
    os.setsid()
    end = time.monotonic() + 3
    while time.monotonic() < end:
        for name in os.listdir('/proc'):
            if name.isdigit() and int(name) != os.getpid():
                try:
                    os.kill(int(name), signal.SIGSTOP)
                except OSError:
                    pass
        time.sleep(0.001)
    os._exit(0)
time.sleep(0.05)
"""
    pool.run(Job(id="stopper", program=program, tests=TESTS))
    result = pool.run(Job(id="after", program=RIGHT, tests=TESTS))
    assert result.passed and result.time_s < 2, (result.status, result.message, result.time_s)


def test_io_program_damaging_its_directory_between_inputs_is_an_ordinary_failure(pool):
    program = ("import os, sys\nn = int(input())\nprint(n * 2)\nsys.stdout.flush()\n"
               "os.chmod('.', 0)\ntry:\n    open('/tmp/fill', 'wb').write(b'x' * (80 << 20))\n"
               "except OSError:\n    pass\n")
    result = pool.run(Job(id="io_damage", program=program,
                          io=(("1", "2"), ("2", "4"), ("3", "7"))))
    assert result.scorable and result.status != "infrastructure_error", result.message
    assert [t.passed for t in result.tests] == [True, True, False], result.tests
