"""Every isolation level that starts on this machine gives the same verdicts on core cases."""

import shutil

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool
from prm_jax.sandbox.isolation import LEVELS

ADD = "def add(a, b):\n    return a + b\n"
# The bomb and loop programs never reach their tests, so the tests are the trivial `assert True`:
# the verdict must come from the containment (timeout / memory), not from a failing assert.
CASES = [
    (ADD, ("assert add(1, 2) == 3",), "passed"),
    (ADD, ("assert add(1, 2) == 4",), "failed"),
    ("import os\nos._exit(0)\n", ("assert 1 == 2",), "runtime_error"),
    ("while True:\n    pass\n", ("assert True",), "timeout"),
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
     ("assert True",), "timeout"),
    ("x = bytearray(4 * 1024 ** 3)\n", ("assert True",), "memory"),
]


_TOOL = {"bwrap": "bwrap", "unshare": "unshare", "rlimits": None}


@pytest.mark.parametrize("level", LEVELS)
def test_level_verdicts(level):
    # Only a missing tool excuses a level (e.g. no bubblewrap on a developer laptop); if the tool
    # is installed, failing to start is a test failure.
    if _TOOL[level] and shutil.which(_TOOL[level]) is None:
        pytest.skip(f"{_TOOL[level]} is not installed")
    pool = SandboxPool(workers=1, isolation_level=level,
                       limits=Limits(timeout_s=1.5, memory_mb=256, max_processes=16))
    with pool:
        for program, tests, status in CASES:
            result = pool.run(Job(id="x", program=program, tests=tests))
            assert result.status == status, (level, program, result.message)
        io = pool.run(Job(id="io", program="print(int(input()) + 1)", io=(("1", "2"),)))
        assert io.passed


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="unknown isolation level 'docker'"):
        SandboxPool(isolation_level="docker")
