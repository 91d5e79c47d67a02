"""The warm fork server that runs inside each sandboxed worker.

The host starts one server per worker (under bubblewrap / unshare / rlimits, as an unprivileged
uid) and talks to it over stdin/stdout with length-prefixed JSON frames. The server is
non-dumpable and, under bubblewrap, pid 1 of its pid namespace (signals from a run cannot reach
it). At start-up, before any job, it forks the zygote (`zygote.py`: every program process is
forked from it) and the judge (`judge.py`: runs the tests of every assert run). Then, per job:

* assert jobs: hands the job to the program process the zygote forked ahead of time and, with
  fresh request/reply pipes' ends, to the judge; waits for the judge's records (deadline, and the
  memory of the run's whole process tree); replies;
* IO jobs: per input, forks a child that execs a fresh interpreter on the program file (stdin,
  stdout and stderr are in-memory files, the outputs size-limited); replies;

and after replying (while the host scores) kills and reaps every process of the run, continues
or replaces the judge, and empties the run directory, /tmp, /dev/shm, message queues and SysV
IPC objects, so nothing survives into the next run.
"""

import gc
import json
import marshal
import os
import select
import signal
import socket
import sys
import time

from . import hygiene, judge, program, protocol
from . import zygote as zygote_lib

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

    def __init__(self, deadline, memory_mb, sweep_all, pgids, exclude=()):
        self.deadline = deadline
        self.memory_kb = int(memory_mb) * 1024
        self.sweep_all, self.pgids = sweep_all, set(pgids)
        self.exclude = set(exclude)
        self.timed_out = self.memory_exceeded = False
        self.peak_kb = 0
        self._next_check = time.monotonic() + _POLL_S

    def over_memory(self):
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + _POLL_S
        pids = hygiene.run_pids(self.exclude, self.sweep_all, self.pgids)
        rss = hygiene.tree_memory_kb(pids)
        if rss <= self.memory_kb:
            self.peak_kb = max(self.peak_kb, rss)
            return False
        pss = hygiene.tree_pss_kb(pids)
        self.peak_kb = max(self.peak_kb, pss)
        return pss > self.memory_kb

    def wait(self, fd=None, pid=None, until=None, limit=_REPORT_LIMIT):
        """Reads `fd` to end of file or until `until(bytes read)` (or waits for `pid` to
        exit); returns the bytes read."""
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
                    try:
                        chunk = os.read(fd, 1 << 16)
                    except OSError:  # e.g. the judge was killed: its socket was reset
                        chunk = b""
                    if not chunk:
                        return bytes(buf)
                    if len(buf) < limit:
                        buf += chunk
                    if until is not None and until(buf):
                        return bytes(buf)
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


def _wait(pid):
    """(exit status, max rss KiB) of child `pid`, blocking."""
    try:
        _, status, usage = os.wait4(pid, 0)
        return _exit_status(status), usage.ru_maxrss
    except ChildProcessError:  # already reaped by a sweep: it was killed
        return -signal.SIGKILL, 0


def _end_run(pids, sweep_all, spare=()):
    """Kills the server's children `pids` and every other process of the run (all but the
    server and `spare`); returns ({pid: (status, maxrss KiB)}, clean)."""
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
            statuses[pid] = _wait(pid)
    clean = hygiene.sweep(sweep_all, pgids=pids, spare=spare)
    return statuses, clean


def _memfd_tail(fd, limit):
    """(the first `limit` bytes of an output file as text, its size); the file offset, which
    the run's process shares, is left alone."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, limit + 1, 0) if size else b""
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


def cached_tests(sources):
    """The tests compiled and marshalled, memoised: RL workloads rerun the same tests."""
    key = tuple(sources)
    blob = _TEST_CACHE.get(key)
    if blob is None:
        if len(_TEST_CACHE) > 4096:
            _TEST_CACHE.clear()
        blob = _TEST_CACHE[key] = marshal.dumps(
            [compile(src, f"<test {i}>", "exec", dont_inherit=True) for i, src in enumerate(sources)])
    return blob


class Judge:
    """The worker's judge process, forked once (before any program ran) and kept across runs;
    replaced if a run leaves it stuck or dead."""

    def __init__(self):
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.status = None
        self.pid = os.fork()
        if self.pid == 0:
            _child(lambda: self._body(theirs))
        theirs.close()

    def _body(self, control):
        (fd,) = hygiene.keep_fds([control.fileno()])
        control = socket.socket(fileno=fd)
        os.setsid()
        os.chdir("/")
        _redirect("/dev/null", "/dev/null", "/dev/null")
        judge.serve(control, _JUDGE_EXTRA_MB)

    def start(self, job, tests, req_fd, rep_fd):
        """Hands one run to the judge: the pipes' ends, then the job. False if it is gone."""
        try:
            socket.send_fds(self.control, [b"r"], [req_fd, rep_fd])
            protocol.write_frame(self.control.fileno(), marshal.dumps((job, tests)))
            return True
        except OSError:
            return False

    def usable(self):
        """Alive, and continued in case the run stopped it (SIGSTOP) on its way out."""
        try:
            os.kill(self.pid, signal.SIGCONT)
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except (ProcessLookupError, ChildProcessError):
            return False

    def stop(self):
        """Kills the judge (idempotent); returns its exit status."""
        if self.status is None:
            self.control.close()
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.status = _wait(self.pid)[0]
        return self.status


class Program:
    """A program process forked by the zygote ahead of its job (off the critical path); the
    server holds the request/reply pipes' ends for the judge and the job pipe."""

    def __init__(self, zygote):
        self.status = None
        self.pid, self.w_req, self.r_rep, self.job_fd, self.out_fd, self.err_fd = zygote.collect()
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:
            self.pidfd = None

    def start(self, job):
        """Hands the job over; False if the process is gone (it had run nothing yet)."""
        try:
            protocol.write_frame(self.job_fd, marshal.dumps(job))
            return True
        except OSError:
            return False

    def close(self, outputs=False):
        """Closes the server's ends of the process's pipes, and with `outputs` its stdout and
        stderr files and its pidfd (idempotent)."""
        names = ("job_fd", "w_req", "r_rep") + (("out_fd", "err_fd", "pidfd") if outputs else ())
        for name in names:
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def wait_gone(self, timeout):
        """Waits (at most `timeout` s) until the killed process has exited: the sweep that
        follows then finds nothing to poll for (a polling sweep oversleeps its exit)."""
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], timeout)

    def ended(self, zygote):
        """(exit status, max rss KiB) if the process has already ended, else None."""
        if self.status is None:
            self.status = zygote.status(self.pid, 0)
        return self.status

    def stop(self, zygote, wait=True):
        """Kills the process and its group (idempotent); (exit status, max rss KiB), if
        `wait`ed for."""
        self.close()
        if self.status is None:
            for kill in (os.killpg, os.kill):
                try:
                    kill(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if wait:
                self.status = zygote.status(self.pid, 5.0) or (-signal.SIGKILL, 0)
        return self.status


def program_child(rundir):
    """(what a forked program process does before its job arrives and then with it, the
    zygote's one-time set-up for all of them)."""
    def prepare(job_fd, req_fd, rep_fd, out_fd, err_fd):
        req, rep, job_fd, out_fd, err_fd = hygiene.keep_fds([req_fd, rep_fd, job_fd, out_fd,
                                                            err_fd])
        os.setsid()
        os.chdir(rundir)
        # fd 0 is /dev/null already; sys.std* were made by the zygote on fds 0-2.
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        job = zygote_lib.read_job(job_fd)
        hygiene.job_limits(job["memory_mb"], job["cpu_s"], job["output_limit_bytes"],
                           job.get("nproc"))
        program.serve(job, req, rep, rundir)

    def zygote_init():
        hygiene.process_defaults()
        _std_streams()
    return prepare, zygote_init


def _parse_records(report):
    records = []
    view = memoryview(report)
    while len(view) >= 4:
        size = protocol.HEADER.unpack(view[:4])[0]
        if len(view) < 4 + size:
            break
        records.append(json.loads(bytes(view[4:4 + size])))
        view = view[4 + size:]
    return records


def _records_complete(buf):
    return buf.endswith(_END_FRAME)


_END_FRAME = protocol.HEADER.pack(len(b'{"t": "end"}')) + b'{"t": "end"}'


def run_assert(job, judge_proc, prog, zygote, sweep_all):
    """Runs an assert job: the pre-forked program process loads the program while the judge
    runs the tests. Returns (report, judge usable afterwards)."""
    try:
        tests = cached_tests(job["tests"])
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        prog.close()
        return {"infra_error": f"a test does not compile in the sandbox: {type(e).__name__}: {e}"}, True
    limit = int(job["output_limit_bytes"])
    deadline = time.monotonic() + float(job["timeout_s"])
    job = {k: job[k] for k in ("program", "tests", "setup", "memory_mb", "cpu_s", "nproc",
                               "output_limit_bytes", "stop_on_first_failure") if k in job}
    # The judge first: once the program process has its job it runs untrusted code (on this
    # CPU, possibly before the server's next line) and may kill the judge; a judge killed
    # after it was handed the run is the program's doing, not the sandbox's.
    started = judge_proc.start(job, tests, prog.w_req, prog.r_rep) and prog.start(job)
    prog.close()
    if not started:
        return {"infra_error": "the judge or the pre-forked program process was gone"}, False
    supervisor = Supervisor(deadline, job["memory_mb"], sweep_all, (prog.pid,),
                            exclude={judge_proc.pid, zygote.pid})
    report = supervisor.wait(fd=judge_proc.control.fileno(), until=_records_complete)
    records = _parse_records(report)
    judge_ok = bool(records) and records[-1].get("t") == "end"
    statuses = {}
    judge_exit = 0
    if not judge_ok:  # overran, or the judge died (killed by the program): end it all now
        judge_exit = judge_proc.stop()
        statuses[prog.pid] = prog.stop(zygote)
    elif prog.ended(zygote) is not None:
        statuses[prog.pid] = prog.status
    output, out_size = _memfd_tail(prog.out_fd, 4096)
    errors, err_size = _memfd_tail(prog.err_fd, 4096)
    program_exit, program_rss = statuses.get(prog.pid, (None, 0))
    return {"records": [r for r in records if r.get("t") != "end"],
            "timeout": supervisor.timed_out, "memory_exceeded": supervisor.memory_exceeded,
            "judge_exit": judge_exit, "exit": program_exit,
            "max_rss_kb": max(program_rss, supervisor.peak_kb),
            "output": (output[-2048:] + ("\n[stderr]\n" + errors[-2048:] if errors else "")),
            "output_limited": max(out_size, err_size) >= limit}, judge_ok


# ----------------------------------------------------------------------------- io jobs
def _memfd(name, data=b""):
    """An anonymous in-memory file: no directory the program could fill or chmod holds it."""
    fd = os.memfd_create(name)
    while data:
        data = data[os.write(fd, data):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_io(job, rundir, sweep_all, spare=()):
    """Each input in a fresh interpreter; stdin, stdout and stderr are in-memory files."""
    results = []
    limit = int(job["output_limit_bytes"])
    main_path = os.path.join(rundir, "main.py")
    with open(main_path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(job["program"])
    for i, stdin in enumerate(job["inputs"]):
        try:
            os.chmod(rundir, 0o700)  # in case the previous input's run took it away
        except OSError:
            pass
        fds = (_memfd("stdin", stdin.encode("utf-8", "surrogateescape")), _memfd("stdout"),
               _memfd("stderr"))
        start = time.monotonic()

        def body():
            os.setsid()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.closerange(3, 1 << 16)
            os.chdir(rundir)
            hygiene.apply_limits(job["memory_mb"], job["cpu_s"], limit, job.get("nproc"))
            os.execv(sys.executable, [sys.executable, "-I", "-c", program.LAUNCHER, main_path])

        pid = os.fork()
        if pid == 0:
            _child(body)
        supervisor = Supervisor(start + float(job["timeout_s"]), job["memory_mb"], sweep_all,
                                (pid,), exclude=spare)
        supervisor.wait(pid=pid)
        statuses, clean = _end_run((pid,), sweep_all, spare=spare)
        exit_code, rss = statuses[pid]
        if supervisor.timed_out:
            exit_code = None
        stdout, out_size = _memfd_tail(fds[1], limit)
        stderr, err_size = _memfd_tail(fds[2], 4096)
        for fd in fds:
            os.close(fd)
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


# The only files the sandbox itself writes into the run directory (outputs are memfds).
_RUN_FILES = frozenset({"solution.py", "main.py"})


def _clear_rundir(rundir):
    """Empties the run directory; the common case (only the server's own files) is a few
    unlinks, anything else (subdirectories, odd permissions) a full wipe."""
    try:
        names = os.listdir(rundir)
        if all(n in _RUN_FILES for n in names) and os.stat(rundir).st_mode & 0o777 == 0o700:
            for name in names:
                os.unlink(os.path.join(rundir, name))
            return
    except OSError:
        pass
    hygiene.wipe(rundir)


def _reset_state(scratch, rundir, private):
    """Empties everything a run could have written: the run directory always; /tmp, /dev/shm
    and /dev/mqueue when they are this worker's private mounts; SysV IPC objects."""
    _clear_rundir(rundir)
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
    flags = set(argv[1:])
    sweep_all, private = "sweep_all" in flags, "private_tmp" in flags
    for flag in flags:
        if flag.startswith("cpu="):
            # The judge and the program process hand every call back and forth: on one CPU a
            # round trip costs a third of what it costs between two (no cross-CPU wake-ups).
            try:
                os.sched_setaffinity(0, {int(flag[4:])})
            except (OSError, ValueError):
                pass
    hygiene.set_dumpable(False)
    hygiene.set_subreaper()
    _preload()
    gc.collect()
    gc.freeze()  # forked children's collections then skip (and do not copy) the server's objects
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    rundir = os.path.join(scratch, "run")
    _reset_state(scratch, rundir, private)
    send(proto_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                     "python": sys.version.split()[0]})
    zygote = zygote_lib.Zygote(*program_child(rundir))  # before any job: see zygote.py
    judge_proc = Judge()
    zygote.request()
    prog = None
    while True:
        job = recv(proto_in)
        if job is None:
            return
        if job.get("op") == "ping":
            send(proto_out, {"pong": True})
            continue
        started = time.monotonic()
        judge_ok = True
        spare = {zygote.pid, judge_proc.pid}
        try:
            prog = Program(zygote)
            if job["kind"] == "assert":
                out, judge_ok = run_assert(job, judge_proc, prog, zygote, sweep_all)
            else:
                prog.stop(zygote)
                out = run_io(job, rundir, sweep_all, spare)
        except Exception as e:  # the server's own failure: an infrastructure error
            out = {"infra_error": f"{type(e).__name__}: {e}"}
            judge_ok = False
        out["wall_s"] = time.monotonic() - started
        zygote_alive = zygote.alive()
        if not zygote_alive:  # killed by the program: this worker ends after the reply
            out["recycle"] = "the zygote was killed"
        send(proto_out, out)
        # After replying, so that the host scores while this run is torn down. If the run's
        # state cannot be removed or the zygote is gone, the server exits: the host replaces
        # the worker (the verdict sent stands) and the next job runs on a fresh one.
        if prog is not None:
            prog.stop(zygote, wait=False)
            prog.wait_gone(1.0)
            prog.close(outputs=True)
        clean = hygiene.sweep(sweep_all, pgids=(prog.pid,) if prog else (), spare=spare)
        if not judge_ok or not judge_proc.usable():
            judge_proc.stop()
            judge_proc = Judge()
        _reset_state(scratch, rundir, private)
        if not clean or not zygote_alive or not zygote.alive():
            return
        try:
            zygote.request()
        except OSError:
            return
        prog = None
