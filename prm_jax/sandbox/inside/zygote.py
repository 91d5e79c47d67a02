"""The zygote: the process every assert run's program process is forked from.

The server sees every job (programs, tests, results), and a forked child inherits its parent's
whole memory, freed or not, so a program forked from the server could read the tests and
expected values of earlier runs (RL reruns the same problems constantly). The zygote is forked
from the server at start-up, before any job exists, and is told nothing but "fork": the memory
a program process inherits holds no job data at all. It reports its children's exit statuses
to the server. If it dies (a program may kill its parent), the server cannot make a clean one
and exits; the host starts a fresh worker.

Per-process set-up that does not depend on the job (signal dispositions, fixed rlimits, the
`sys.std*` objects) is done once in the zygote (`init`), not in every program process: each
object a forked child touches costs it a copy-on-write page fault, and these were a third of
a short run's cost. The zygote is non-dumpable like the server, except while it forks: the
child inherits a dumpable flag (so the run can use /proc/self like any process) without a
prctl of its own. Nothing of an earlier run is alive then (the server swept it).

Messages on the SOCK_SEQPACKET socket (one marshal tuple each):
  server -> zygote  ("fork",)
  zygote -> server  ("forked", pid) with the fds [request write end, reply read end, job
                    write end, stdout memfd, stderr memfd]; ("exit", pid, status, max rss KiB)
"""

import marshal
import os
import select
import signal
import socket
import time

from . import hygiene, protocol


class Zygote:
    """The server's handle on the zygote process."""

    def __init__(self, prepare_child, init=None):
        """`prepare_child(job_fd, req_fd, rep_fd, out_fd, err_fd)` runs in each forked program
        process; `init()` once in the zygote, before its first fork."""
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.statuses = {}
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                (fd,) = hygiene.keep_fds([theirs.fileno()])
                if init is not None:
                    init()
                _serve(socket.socket(fileno=fd), prepare_child)
            finally:
                os._exit(0)
        theirs.close()

    def _receive(self, timeout=None):
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None, []
        data, fds, _, _ = socket.recv_fds(self.sock, 256, 5)
        if not data:
            raise ChildProcessError("the zygote has ended")
        message = marshal.loads(data)
        if message[0] == "exit":
            if len(self.statuses) > 64:  # statuses nobody asked for (programs killed and left)
                self.statuses.clear()
            self.statuses[message[1]] = (message[2], message[3])
        return message, fds

    def request(self):
        """Asks for a new program process (collected later with `collect`)."""
        self.resume()
        self.sock.send(marshal.dumps(("fork",)))

    def collect(self, timeout=10.0):
        """(pid, request write fd, reply read fd, job write fd, stdout fd, stderr fd) of the
        program process asked for; ChildProcessError if the zygote does not answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message, fds = self._receive(deadline - time.monotonic())
            if message is not None and message[0] == "forked":
                return (message[1], *fds)
        raise ChildProcessError("the zygote did not answer")

    def status(self, pid, timeout):
        """(exit status, max rss KiB) of program process `pid` once it has ended, or None."""
        if timeout:
            self.resume()
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self.statuses:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            try:
                self._receive(remaining)
            except (ChildProcessError, OSError):
                return None
        return self.statuses.pop(pid)

    def resume(self):
        """Continues the zygote if a program stopped it (SIGSTOP to its parent)."""
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def alive(self):
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False


def _serve(sock, prepare_child):
    live = {}  # pidfd -> pid
    while True:
        ready, _, _ = select.select([sock] + list(live), [], [])
        # Exits before a fork request: the server asks for the next program only after the
        # last one has exited, so reaping first means a run's process never outlives it as a
        # zombie beside its successor.
        for fd in sorted(ready, key=lambda x: x is sock):
            if fd is sock:
                if not sock.recv(64):
                    return
                pid, fds = _fork_program(prepare_child)
                socket.send_fds(sock, [marshal.dumps(("forked", pid))], fds)
                for x in fds:
                    os.close(x)
                live[os.pidfd_open(pid)] = pid
            else:
                pid = live.pop(fd)
                os.close(fd)
                _, status, usage = os.wait4(pid, 0)
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                sock.send(marshal.dumps(("exit", pid, code, usage.ru_maxrss)))


def _fork_program(prepare_child):
    r_req, w_req = os.pipe()
    r_rep, w_rep = os.pipe()
    r_job, w_job = os.pipe()
    out_fd, err_fd = os.memfd_create("stdout"), os.memfd_create("stderr")
    pid = -1
    hygiene.set_dumpable(True)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                prepare_child(r_job, r_req, w_rep, out_fd, err_fd)
            finally:
                os._exit(71)
    finally:
        if pid != 0:
            hygiene.set_dumpable(False)
    for fd in (r_req, w_rep, r_job):
        os.close(fd)
    return pid, [w_req, r_rep, w_job, out_fd, err_fd]


def read_job(fd):
    """The job a program process is given (called in the program process)."""
    job = marshal.loads(protocol.read_frame(fd))
    os.close(fd)
    return job
