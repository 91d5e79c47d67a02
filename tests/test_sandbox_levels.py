"""Every isolation level that starts on this machine gives the same verdicts on core cases."""

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool, SandboxUnavailable
from prm_jax.sandbox.isolation import LEVELS

ADD = "def add(a, b):\n    return a + b\n"
CASES = [
    (ADD, ("assert add(1, 2) == 3",), "passed"),
    (ADD, ("assert add(1, 2) == 4",), "failed"),
    ("import os\nos._exit(0)\n", ("assert 1 == 2",), "runtime_error"),
    ("while True:\n    pass\n", ("assert True",), "timeout"),
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
     ("assert True",), "timeout"),
    ("x = bytearray(4 * 1024 ** 3)\n", ("assert True",), "memory"),
]


@pytest.mark.parametrize("level", LEVELS)
def test_level_verdicts(level):
    try:
        pool = SandboxPool(workers=1, isolation_level=level,
                           limits=Limits(timeout_s=1.5, memory_mb=256, max_processes=16))
    except SandboxUnavailable as e:
        pytest.skip(f"{level} cannot start here: {e}")
    with pool:
        for program, tests, status in CASES:
            result = pool.run(Job(id="x", program=program, tests=tests))
            assert result.status == status, (level, program, result.message)
        io = pool.run(Job(id="io", program="print(int(input()) + 1)", io=(("1", "2"),)))
        assert io.passed


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="unknown isolation level 'docker'"):
        SandboxPool(isolation_level="docker")
