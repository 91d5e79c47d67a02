"""A pool of warm sandboxed fork servers: parallel execution with back-pressure and retries.

Each worker is one fork server in its own sandbox with its own unprivileged uid (a random block
per pool, so concurrent pools never share a process budget). `run` blocks until a worker is
free (back-pressure); `run_many` keeps every worker busy and returns results in input order.

Failure handling: if a worker dies or stops answering during a job, it is killed (its whole
namespace with it) and restarted, and the job is retried. A job that kills a freshly started
worker on every attempt is the program's doing (`runtime_error`); a worker that cannot be
(re)started, or a server-side exception, is an `infrastructure_error` — never a failure.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import math
import os
import queue
import random
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from typing import Callable, Iterable, Sequence

from prm_jax.sandbox import isolation
from prm_jax.sandbox.scoring import SandboxFault, score_assert, score_io
from prm_jax.sandbox.types import ExecutionResult, Job, Limits, TestResult

_FRAME = struct.Struct(">I")
_log = logging.getLogger("prm_jax.sandbox")
_START_TIMEOUT_S = 30.0
_MARGIN_S = 3.0


class WorkerDied(RuntimeError):
    pass


class _Worker:
    """One fork server process and its pipes."""

    def __init__(self, level: str, uid: int, cpu: int | None = None):
        self.level, self.uid = level, uid
        self.scratch = tempfile.mkdtemp(prefix=f"prm_jax_sandbox_{uid}_")
        if isolation.is_root():
            os.chown(self.scratch, uid, uid)
        os.chmod(self.scratch, 0o700)
        cmd, self.sweep_all = isolation.worker_command(level, uid, self.scratch, cpu)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0,
            start_new_session=True, close_fds=True, cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": self.scratch,
                 "LD_BIND_NOW": "1"})
        hello = self._recv(_START_TIMEOUT_S)
        if not hello or not hello.get("ready"):
            self.kill()
            raise isolation.SandboxUnavailable(
                f"{level} sandbox did not start: {self.stderr_text() or 'no answer'}")
        self.info = hello

    def stderr_text(self) -> str:
        try:
            self.stderr.seek(0)
            return self.stderr.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _recv(self, timeout: float) -> dict | None:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout

        def read_exact(n):
            chunks = []
            while n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                ready, _, _ = select.select([fd], [], [], remaining)
                if not ready:
                    return None
                chunk = os.read(fd, n)
                if not chunk:
                    return None
                chunks.append(chunk)
                n -= len(chunk)
            return b"".join(chunks)

        head = read_exact(4)
        if head is None:
            return None
        body = read_exact(_FRAME.unpack(head)[0])
        if body is None:
            return None
        try:
            reply = json.loads(body)
        except ValueError:  # never written by a working server: treat it as a dead one
            return None
        return reply if isinstance(reply, dict) else None

    def request(self, payload: dict, timeout: float) -> dict:
        data = json.dumps(payload).encode()
        try:
            self.proc.stdin.write(_FRAME.pack(len(data)) + data)
        except (BrokenPipeError, OSError) as e:
            raise WorkerDied(f"worker stdin closed: {e}") from e
        reply = self._recv(timeout)
        if reply is None:
            raise WorkerDied("worker died or stopped answering")
        return reply

    def kill(self) -> None:
        """Stops the server (gracefully: EOF on its stdin; else SIGKILL) and reaps everything."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if isolation.is_root() and self.level == "rlimits":
            _kill_uid(self.uid)
        _reap_orphans(self.uid)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.stderr.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _become_subreaper() -> None:
    """Orphaned sandbox processes reparent to this process (not to init), so we can reap them."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap_orphans(uid: int, timeout_s: float = 5.0) -> None:
    """Kills and reaps our children owned by `uid` (orphans of a killed sandbox)."""
    me = str(os.getpid())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        mine = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat") as f:
                    ppid = f.read().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if ppid == me:
                mine.append(int(name))
        if not mine:
            return
        for pid in mine:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _kill_uid(uid: int) -> None:
    """Host-side last resort: SIGKILL every process owned by `uid` (a pool-private uid)."""
    for _ in range(50):
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found = True
                    os.kill(int(name), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        if not found:
            return
        time.sleep(0.01)


_detected: dict[str, str] = {}  # requested level -> level that started (once per process)


def detect_level(requested: str = "auto") -> str:
    """The strongest isolation level that starts here (or `requested`, checked).

    Probing starts and stops a worker, so a successful answer is remembered for the process.
    """
    if requested != "auto" and requested not in isolation.LEVELS:
        raise ValueError(f"unknown isolation level {requested!r}; expected 'auto' or one of "
                         f"{isolation.LEVELS}")
    if requested not in _detected:
        _detected[requested] = _probe(requested)
    return _detected[requested]


def _probe(requested: str) -> str:
    levels = isolation.LEVELS if requested == "auto" else (requested,)
    errors = []
    for level in levels:
        uid = _uid_block(1)
        try:
            worker = _Worker(level, uid)
        except (isolation.SandboxUnavailable, OSError) as e:
            errors.append(f"{level}: {e}")
            continue
        worker.kill()
        return level
    raise isolation.SandboxUnavailable("no sandbox could be started: " + "; ".join(errors))


def _uid_block(n: int) -> int:
    if not isolation.is_root():
        return os.geteuid()
    return random.SystemRandom().randrange(200_000, 2**31 - 2 - n)


def validate_job(job: Job) -> None:
    """Malformed tests are the caller's error, reported before anything runs.

    Each test and the setup must compile as module code: so a top-level `return`, `yield`,
    `await` or `break`/`continue` outside a loop is rejected (they would otherwise end or skip
    a test without evaluating its asserts)."""
    for i, source in enumerate(job.tests):
        _check_compiles(source, f"job {job.id!r}: test {i}", f"<test {i}>")
    if job.setup:
        _check_compiles(job.setup, f"job {job.id!r}: setup", "<setup>")


def _check_compiles(source: str, what: str, filename: str) -> None:
    error = _compile_error(source, filename)
    if error is not None:
        raise ValueError(f"{what} is not valid Python: {error}")


@functools.lru_cache(maxsize=4096)
def _compile_error(source: str, filename: str) -> str | None:
    """Why `source` does not compile as module code, or None; memoised (RL reruns the same
    tests on every sample of a problem)."""
    try:
        compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        return f"{e.msg} (line {e.lineno})"
    except (ValueError, RecursionError, MemoryError) as e:
        return str(e)
    return None


class SandboxPool:
    """Runs `Job`s in parallel in warm sandboxes. Use as a context manager or call `close()`."""

    def __init__(self, *, workers: int | None = None, limits: Limits = Limits(),
                 isolation_level: str = "auto", max_attempts: int = 2, pin_cpus: bool = True):
        """`pin_cpus`: each worker's processes (server, judge, program) share one CPU of this
        process's affinity set, worker i on the i-th CPU (round robin): test calls cross
        between judge and program about three times faster than between CPUs."""
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits = limits
        self.max_attempts = max_attempts
        _become_subreaper()
        self.level = detect_level(isolation_level)
        isolation.announce(self.level)
        self.num_workers = workers or max(1, os.cpu_count() or 1)
        self._base_uid = _uid_block(self.num_workers)
        self._cpus = sorted(os.sched_getaffinity(0)) if pin_cpus else None
        self._free: queue.Queue[int] = queue.Queue()  # free worker slots
        self._lock = threading.Lock()
        self._live: dict[int, _Worker] = {}
        self._closed = False
        for i in range(self.num_workers):
            self._free.put(i)

    # -------------------------------------------------------------- workers
    def _uid(self, slot: int) -> int:
        return self._base_uid + slot if isolation.is_root() else os.geteuid()

    def _acquire(self) -> tuple[int, "_Worker | None"]:
        slot = self._free.get()
        with self._lock:
            worker = self._live.get(slot)
        if worker is not None and worker.proc.poll() is not None:
            # The server ended after its last reply (e.g. a run killed its zygote): replace it
            # now; this is not an attempt of the next job.
            self._discard(slot)
            worker = None
        return slot, worker

    def _start(self, slot: int) -> _Worker:
        cpu = self._cpus[slot % len(self._cpus)] if self._cpus else None
        worker = _Worker(self.level, self._uid(slot), cpu)
        with self._lock:
            self._live[slot] = worker
        return worker

    def _discard(self, slot: int) -> None:
        with self._lock:
            worker = self._live.pop(slot, None)
        if worker is not None:
            worker.kill()

    def _payload(self, job: Job) -> tuple[dict, float]:
        timeout = float(job.timeout_s or self.limits.timeout_s)
        nproc = self.limits.max_processes + 4
        if not isolation.is_root():
            nproc = None  # RLIMIT_NPROC would count all of this user's processes
        payload = {
            "kind": job.kind, "program": job.program, "tests": list(job.tests), "setup": job.setup,
            "inputs": [stdin for stdin, _ in job.io], "timeout_s": timeout,
            "cpu_s": math.ceil(timeout) + 1, "memory_mb": self.limits.memory_mb,
            "output_limit_bytes": self.limits.output_limit_bytes, "nproc": nproc,
            "stop_on_first_failure": job.stop_on_first_failure, "strict": job.strict,
        }
        host_timeout = timeout * max(1, len(job.io)) + _MARGIN_S
        return payload, host_timeout

    # -------------------------------------------------------------- public API
    def run(self, job: Job, *, _validated: bool = False) -> ExecutionResult:
        """Executes one job (blocking until a worker is free)."""
        if self._closed:
            raise RuntimeError("SandboxPool is closed")
        if not _validated:
            validate_job(job)
        payload, host_timeout = self._payload(job)
        slot, worker = self._acquire()
        try:
            kills, infra = 0, []
            for attempt in range(1, self.max_attempts + 1):
                if worker is None:
                    try:
                        worker = self._start(slot)
                    except (isolation.SandboxUnavailable, OSError) as e:
                        infra.append(f"start failed: {e}")
                        time.sleep(0.05 * attempt)
                        continue
                try:
                    report = worker.request(payload, host_timeout)
                except WorkerDied as e:
                    self._discard(slot)
                    worker = None
                    kills += 1
                    infra.append(str(e))
                    continue
                if "infra_error" in report:
                    self._discard(slot)
                    worker = None
                    infra.append(report["infra_error"])
                    continue
                if "recycle" in report:  # the verdict stands; the worker is replaced
                    self._discard(slot)
                    worker = None
                scorer = score_assert if job.kind == "assert" else score_io
                try:
                    result = scorer(job, report, self.limits)
                except (SandboxFault, TypeError, ValueError, KeyError, AttributeError) as e:
                    _log.warning("job %s: unusable sandbox report: %s", job.id, e)
                    self._discard(slot)
                    worker = None
                    infra.append(f"unusable sandbox report: {e}")
                    continue
                return _with_attempts(result, attempt)
            if kills == self.max_attempts:
                return _with_attempts(ExecutionResult(
                    id=job.id, status="runtime_error",
                    tests=tuple(TestResult(index=i, passed=False, error="not_run")
                                for i in range(job.num_tests)),
                    message="the program killed or froze its sandbox on every attempt"),
                    self.max_attempts)
            return _with_attempts(ExecutionResult(
                id=job.id, status="infrastructure_error",
                tests=tuple(TestResult(index=i, passed=False, error="not_run")
                            for i in range(job.num_tests)),
                message="; ".join(infra[-3:])), self.max_attempts)
        finally:
            self._free.put(slot)

    def run_many(self, jobs: Iterable[Job], *, on_result: Callable[[ExecutionResult], None] | None = None
                 ) -> list[ExecutionResult]:
        """Runs all jobs with every worker busy; results in input order."""
        jobs = list(jobs)
        for job in jobs:
            validate_job(job)
        results: list[ExecutionResult | None] = [None] * len(jobs)
        with concurrent.futures.ThreadPoolExecutor(self.num_workers) as executor:
            futures = {executor.submit(self.run, job, _validated=True): i for i, job in enumerate(jobs)}
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                if on_result is not None:
                    on_result(results[futures[future]])
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers = list(self._live.values())
            self._live.clear()
        for worker in workers:
            worker.kill()

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prune(self) -> None:
        """Reaps idle workers whose server has ended; they are restarted when next used."""
        with self._lock:
            ended = [slot for slot, w in self._live.items() if w.proc.poll() is not None]
        for slot in ended:
            self._discard(slot)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._live.values()]


def _with_attempts(result: ExecutionResult, attempts: int) -> ExecutionResult:
    import dataclasses
    return dataclasses.replace(result, attempts=attempts)


def run_jobs(jobs: Sequence[Job], **pool_kwargs) -> list[ExecutionResult]:
    """One-shot convenience: a pool for `jobs`, closed afterwards."""
    with SandboxPool(**pool_kwargs) as pool:
        return pool.run_many(jobs)
