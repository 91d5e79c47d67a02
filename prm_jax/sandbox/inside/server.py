"""The warm fork server that runs inside each sandboxed worker.

The host starts one server per worker (under bubblewrap / unshare / rlimits, as an unprivileged
uid) and talks to it over stdin/stdout with length-prefixed JSON frames. The server is
non-dumpable and, under bubblewrap, pid 1 of its pid namespace (signals from the run cannot
reach it). For each job it:

* assert jobs: forks a *judge* (`judge.run`) and a *program* process (`program.serve`) from its
  warm interpreter, joined by two fresh pipes (requests, replies); the judge alone holds the
  pipe on which the verdict records come back;
* IO jobs: per input, forks a child that execs a fresh interpreter on the program file (stdin
  from a file, stdout and stderr to separate size-limited files);

then supervises the run (wall-clock deadline, memory of the run's whole process tree), kills and
reaps every process of the run, and wipes the run directory, /tmp, /dev/shm, message queues
and SysV IPC objects, so nothing survives into the next run.
"""

import json
import os
import select
import signal
import sys
import time

from . import hygiene, judge, program, protocol

_POLL_S = 0.02          # how often a running run's memory is measured
_JUDGE_EXTRA_MB = 512    # the judge's own address-space allowance on top of the run's
_REPORT_LIMIT = 8 << 20


def recv(fd):
    body = protocol.read_frame(fd)
    return None if body is None else json.loads(body)


def send(fd, obj):
    protocol.write_frame(fd, json.dumps(obj).encode())


# ----------------------------------------------------------------------------- supervision
class Supervisor:
    """Waits for a run to end, enforcing its deadline and its whole-tree memory budget."""

    def __init__(self, deadline, memory_mb, exclude=()):
        self.deadline = deadline
        self.memory_kb = int(memory_mb) * 1024
        self.exclude = set(exclude)
        self.timed_out = self.memory_exceeded = False
        self.peak_kb = 0
        self._next_check = time.monotonic() + _POLL_S

    def over_memory(self):
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + _POLL_S
        rss = hygiene.tree_memory_kb(self.exclude)
        if rss <= self.memory_kb:
            self.peak_kb = max(self.peak_kb, rss)
            return False
        pss = hygiene.tree_pss_kb(self.exclude)
        self.peak_kb = max(self.peak_kb, pss)
        return pss > self.memory_kb

    def wait(self, fd=None, pid=None, limit=_REPORT_LIMIT):
        """Reads `fd` to end of file (or waits for `pid` to exit); returns the bytes read."""
        buf = bytearray()
        pidfd = os.pidfd_open(pid) if pid is not None else None
        try:
            while True:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self.timed_out = True
                    return bytes(buf)
                watch = [x for x in (fd, pidfd) if x is not None]
                ready, _, _ = select.select(watch, [], [], min(remaining, _POLL_S))
                if fd is not None and fd in ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        return bytes(buf)
                    if len(buf) < limit:
                        buf += chunk
                if pidfd is not None and pidfd in ready:
                    return bytes(buf)
                if self.over_memory():
                    self.memory_exceeded = True
                    return bytes(buf)
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _collect(pids, statuses):
    """Reaps everything that has exited; records the statuses of `pids`."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in pids:
            statuses[pid] = (_exit_status(status), usage.ru_maxrss)


def _exit_status(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _end_run(pids, sweep_all):
    """Kills every process of the run; returns ({pid: (status, maxrss KiB)}, clean)."""
    statuses = {}
    _collect(pids, statuses)
    for pid in pids:
        if pid not in statuses:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pid in pids:
        if pid not in statuses:
            try:
                _, status, usage = os.wait4(pid, 0)
                statuses[pid] = (_exit_status(status), usage.ru_maxrss)
            except ChildProcessError:
                statuses[pid] = (-signal.SIGKILL, 0)
    clean = hygiene.sweep(sweep_all, pgids=pids)
    return statuses, clean


def _file_tail(path, limit):
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1)
    except OSError:
        return "", 0
    return data[:limit].decode("utf-8", "replace"), size


def _redirect(stdin_path, stdout_path, stderr_path):
    fds = [os.open(stdin_path, os.O_RDONLY),
           os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
           os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)


def _std_streams():
    """Fresh sys.std* (and sys.__std*__) objects on fds 0-2 of a forked program process."""
    import io
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False),
                                                 encoding="utf-8", errors="replace")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False),
                                                   encoding="utf-8", errors="replace")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False),
                                                   encoding="utf-8", errors="backslashreplace",
                                                   line_buffering=True)


def _child(body):
    """Runs `body` in a forked child, which never returns into the server."""
    try:
        body()
    finally:
        os._exit(71)


# ----------------------------------------------------------------------------- assert jobs
_TEST_CACHE = {}


def cached_test(source, index):
    """Compiled test `index`, memoised: RL workloads rerun the same tests constantly."""
    key = (source, index)
    code = _TEST_CACHE.get(key)
    if code is None:
        if len(_TEST_CACHE) > 8192:
            _TEST_CACHE.clear()
        code = _TEST_CACHE[key] = compile(source, f"<test {index}>", "exec")
    return code


def run_assert(job, rundir, sweep_all):
    try:
        tests = [cached_test(src, i) for i, src in enumerate(job["tests"])]
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return {"infra_error": f"a test does not compile in the sandbox: {type(e).__name__}: {e}"}
    r_req, w_req = os.pipe()
    r_rep, w_rep = os.pipe()
    r_rpt, w_rpt = os.pipe()
    out_path, err_path = os.path.join(rundir, "stdout.txt"), os.path.join(rundir, "stderr.txt")
    limit = int(job["output_limit_bytes"])
    deadline = time.monotonic() + float(job["timeout_s"])

    def program_body():
        req, rep = hygiene.keep_fds([r_req, w_rep])
        os.setsid()
        os.chdir(rundir)
        hygiene.set_dumpable(True)
        hygiene.apply_limits(job["memory_mb"], job["cpu_s"], limit, job.get("nproc"))
        _redirect("/dev/null", out_path, err_path)
        _std_streams()
        program.serve(job, req, rep, rundir)

    def judge_body():
        req, rep, rpt = hygiene.keep_fds([w_req, r_rep, w_rpt])
        os.setsid()
        os.chdir("/")
        hygiene.apply_limits(int(job["memory_mb"]) + _JUDGE_EXTRA_MB, job["cpu_s"], 0, None)
        _redirect("/dev/null", "/dev/null", "/dev/null")
        judge.run(job, tests, req, rep, rpt)

    judge_pid = os.fork()
    if judge_pid == 0:
        _child(judge_body)
    program_pid = os.fork()
    if program_pid == 0:
        _child(program_body)
    for fd in (r_req, w_req, r_rep, w_rep, w_rpt):
        os.close(fd)
    supervisor = Supervisor(deadline, job["memory_mb"], exclude={judge_pid})
    try:
        report = supervisor.wait(fd=r_rpt)
    finally:
        os.close(r_rpt)
    statuses, clean = _end_run((judge_pid, program_pid), sweep_all)
    records = []
    view = memoryview(report)
    while len(view) >= 4:
        size = protocol.HEADER.unpack(view[:4])[0]
        if len(view) < 4 + size:
            break
        records.append(json.loads(bytes(view[4:4 + size])))
        view = view[4 + size:]
    output, out_size = _file_tail(out_path, 4096)
    errors, err_size = _file_tail(err_path, 4096)
    program_exit, program_rss = statuses[program_pid]
    return {"records": records, "timeout": supervisor.timed_out,
            "memory_exceeded": supervisor.memory_exceeded, "judge_exit": statuses[judge_pid][0],
            "exit": program_exit, "max_rss_kb": max(program_rss, supervisor.peak_kb),
            "output": (output[-2048:] + ("\n[stderr]\n" + errors[-2048:] if errors else "")),
            "output_limited": max(out_size, err_size) >= limit, "clean": clean}


# ----------------------------------------------------------------------------- io jobs
def run_io(job, rundir, sweep_all):
    results = []
    limit = int(job["output_limit_bytes"])
    main_path = os.path.join(rundir, "main.py")
    with open(main_path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(job["program"])
    for i, stdin in enumerate(job["inputs"]):
        in_path = os.path.join(rundir, f"in{i}.txt")
        out_path, err_path = os.path.join(rundir, f"out{i}.txt"), os.path.join(rundir, f"err{i}.txt")
        with open(in_path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(stdin)
        start = time.monotonic()

        def body():
            os.setsid()
            os.chdir(rundir)
            hygiene.apply_limits(job["memory_mb"], job["cpu_s"], limit, job.get("nproc"))
            _redirect(in_path, out_path, err_path)
            os.closerange(3, 1 << 16)
            os.execv(sys.executable, [sys.executable, "-I", "-c", program.LAUNCHER, main_path])

        pid = os.fork()
        if pid == 0:
            _child(body)
        supervisor = Supervisor(start + float(job["timeout_s"]), job["memory_mb"])
        supervisor.wait(pid=pid)
        statuses, clean = _end_run((pid,), sweep_all)
        exit_code, rss = statuses[pid]
        if supervisor.timed_out:
            exit_code = None
        stdout, out_size = _file_tail(out_path, limit)
        stderr, err_size = _file_tail(err_path, 4096)
        results.append({"i": i, "exit": exit_code, "timeout": supervisor.timed_out,
                        "memory_exceeded": supervisor.memory_exceeded, "stdout": stdout,
                        "stderr": stderr[-2048:], "output_limited": max(out_size, err_size) >= limit,
                        "s": time.monotonic() - start, "max_rss_kb": max(rss, supervisor.peak_kb),
                        "clean": clean})
        if job.get("stop_on_first_failure") and (supervisor.timed_out or exit_code != 0):
            break
    return {"io": results}


# ----------------------------------------------------------------------------- main loop
# Imported once in the server so that forked children find them warm (HumanEval/MBPP-style
# programs import these constantly; a cold `import typing` costs milliseconds per run).
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect",
           "string", "hashlib", "importlib")


def _preload():
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _reset_state(scratch, rundir, private):
    """Empties everything a run could have written: the run directory always; /tmp, /dev/shm
    and /dev/mqueue when they are this worker's private mounts; SysV IPC objects."""
    hygiene.wipe(rundir)
    if private:
        hygiene.empty_dir("/tmp", keep={os.path.basename(scratch)})
        hygiene.empty_dir("/dev/shm")
        hygiene.empty_dir("/dev/mqueue")
        hygiene.remove_ipc()


def main(argv):
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    scratch = argv[0] if argv else "/tmp/sandbox"
    sweep_all = len(argv) > 1 and argv[1] == "sweep_all"
    private = len(argv) > 2 and argv[2] == "private_tmp"
    hygiene.set_dumpable(False)
    hygiene.set_subreaper()
    _preload()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    rundir = os.path.join(scratch, "run")
    _reset_state(scratch, rundir, private)
    send(proto_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                     "python": sys.version.split()[0]})
    while True:
        job = recv(proto_in)
        if job is None:
            return
        if job.get("op") == "ping":
            send(proto_out, {"pong": True})
            continue
        started = time.monotonic()
        try:
            if job["kind"] == "assert":
                out = run_assert(job, rundir, sweep_all)
            else:
                out = run_io(job, rundir, sweep_all)
        except Exception as e:  # the server's own failure: an infrastructure error
            out = {"infra_error": f"{type(e).__name__}: {e}"}
        try:
            _reset_state(scratch, rundir, private)
        except Exception as e:  # e.g. a run made its state unremovable: the verdict stands,
            out["recycle"] = f"{type(e).__name__}: {e}"  # and the host replaces this worker
        out["wall_s"] = time.monotonic() - started
        send(proto_out, out)
