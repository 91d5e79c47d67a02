"""Pool behaviour: thousands of runs without leaks, back-pressure, infrastructure errors."""

import os
import threading

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool, isolation
from prm_jax.sandbox import pool as pool_lib

ADD = "def add(a, b):\n    return a + b\n"


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_thousands_of_runs_leak_nothing():
    with SandboxPool(workers=2, limits=Limits(timeout_s=0.3)) as pool:
        pool.run_many([Job(id=f"warm{i}", program="import time\ntime.sleep(0.05)\n" + ADD,
                           tests=("assert add(1, 1) == 2",)) for i in range(4)])
        assert len(pool.worker_pids()) == 2
        fds_before = _open_fds()
        jobs = []
        for i in range(2000):
            if i % 200 == 0:
                jobs.append(Job(id=f"t{i}", program="while True:\n    pass\n", tests=("assert 1",)))
            elif i % 50 == 0:
                jobs.append(Job(id=f"b{i}", program="import os, time\nif os.fork() == 0:\n"
                                "    time.sleep(60)\n" + ADD, tests=("assert add(1, 2) == 3",)))
            else:
                jobs.append(Job(id=f"ok{i}", program=ADD, tests=(f"assert add({i}, 1) == {i + 1}",)))
        results = pool.run_many(jobs)
        statuses = [r.status for r in results]
        assert statuses.count("timeout") == 10
        assert statuses.count("passed") == 1990
        assert _open_fds() == fds_before
        if os.geteuid() == 0:
            uids = {pool._uid(i) for i in range(pool.num_workers)}
            owned = [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) in uids]
            assert len(owned) <= 5 * pool.num_workers  # bwrap, server, zygote, judge, next program


def _uid(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return None


def test_back_pressure_with_more_callers_than_workers():
    with SandboxPool(workers=2) as pool:
        results = []

        def call(i):
            results.append(pool.run(Job(id=str(i), program=ADD, tests=(f"assert add({i}, 0) == {i}",))))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(results) == 16 and all(r.passed for r in results)


def test_infrastructure_errors_are_never_failures(monkeypatch):
    with SandboxPool(workers=1) as pool:
        real = isolation.worker_command
        pool._discard(0)  # force a fresh start on the next job
        monkeypatch.setattr(pool_lib.isolation, "worker_command",
                            lambda *a, **k: (["/bin/false"], True))
        result = pool.run(Job(id="x", program=ADD, tests=("assert add(1, 2) == 3",)))
        assert result.status == "infrastructure_error"
        assert not result.scorable and not result.passed
        assert "did not start" in result.message
        # Transient: the first start fails, the retry succeeds.
        calls = []

        def flaky(*args, **kwargs):
            calls.append(1)
            return (["/bin/false"], True) if len(calls) == 1 else real(*args)

        monkeypatch.setattr(pool_lib.isolation, "worker_command", flaky)
        result = pool.run(Job(id="y", program=ADD, tests=("assert add(1, 2) == 3",)))
        assert result.passed and result.attempts == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        SandboxPool(workers=0)
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="exactly one of"):
        Job(id="x", program="")
    with pytest.raises(TypeError, match="test 0 must be a string"):
        Job(id="x", program="", tests=(3,))
    with SandboxPool(workers=1) as pool:
        with pytest.raises(ValueError, match="test 0 is not valid Python"):
            pool.run(Job(id="x", program="", tests=("assert (",)))


def test_stop_on_first_failure():
    with SandboxPool(workers=1) as pool:
        tests = ("assert add(1, 1) == 2", "assert add(1, 1) == 3", "assert add(2, 2) == 4")
        full = pool.run(Job(id="a", program=ADD, tests=tests))
        assert [t.passed for t in full.tests] == [True, False, True]
        stopped = pool.run(Job(id="b", program=ADD, tests=tests, stop_on_first_failure=True))
        assert stopped.status == "failed"
        assert [t.error for t in stopped.tests] == ["", "assertion", "not_run"]
        # IO jobs stop at the first crash or timeout (outputs are judged on the host).
        io = pool.run(Job(id="c", program="x = int(input())\nassert x != 2\nprint(x * 2)",
                          stop_on_first_failure=True, io=(("1", "2"), ("2", "4"), ("3", "6"))))
        assert [t.error for t in io.tests] == ["", "runtime", "not_run"]


def test_workers_are_pinned_to_one_cpu_each_unless_asked_not_to():
    cpus = sorted(os.sched_getaffinity(0))
    program = "import os\nAFFINITY = sorted(os.sched_getaffinity(0))\n"
    pinned = f"assert len(AFFINITY) == 1 and AFFINITY[0] in {cpus!r}, AFFINITY"
    for pin, test in ((True, pinned), (False, f"assert AFFINITY == {cpus!r}, AFFINITY")):
        with SandboxPool(workers=2, pin_cpus=pin) as pool:
            results = pool.run_many([Job(id=f"a{i}", program=program, tests=(test,))
                                     for i in range(6)])
        assert all(r.passed for r in results), [r.message for r in results]
