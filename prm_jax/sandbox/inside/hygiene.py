"""Per-run process limits, killing a run's leftovers and wiping per-run state (inside the sandbox).

Nothing may survive from one run to the next: processes (killed and reaped), files in the run
directory, /tmp and /dev/shm, SysV IPC objects and POSIX message queues (removed). The server
and the judge are non-dumpable (`PR_SET_DUMPABLE=0`), so a program running under the same uid
can neither ptrace them nor open their /proc/<pid>/mem or /proc/<pid>/fd.
"""

import ctypes
import os
import resource
import shutil
import signal
import time

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_IPC_RMID = 0
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def prctl(option, value):
    if _libc is not None:
        _libc.prctl(option, value, 0, 0, 0)


def set_dumpable(flag):
    prctl(_PR_SET_DUMPABLE, 1 if flag else 0)


def set_subreaper():
    prctl(_PR_SET_CHILD_SUBREAPER, 1)


def apply_limits(memory_mb, cpu_s, fsize, nproc, nofile=256):
    """rlimits and signal dispositions for a process of the run."""
    process_defaults()
    job_limits(memory_mb, cpu_s, fsize, nproc, nofile)


def process_defaults():
    """What a process of any run gets whatever the job: no core dumps, default dispositions
    of the signals the server ignores or handles. Inherited by a fork (the zygote applies it
    once for all its program processes)."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def job_limits(memory_mb, cpu_s, fsize, nproc, nofile=256):
    """The run's rlimits: address space and data (`memory_mb`), CPU seconds, output file
    size, open descriptors, processes of the uid (`nproc`, when given). Set after the process
    has moved the descriptors it keeps (`keep_fds`)."""
    mem = int(memory_mb) << 20
    for res, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_DATA, mem),
                       (resource.RLIMIT_CPU, int(cpu_s)), (resource.RLIMIT_FSIZE, int(fsize)),
                       (resource.RLIMIT_NOFILE, nofile)):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass
    if nproc:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        except (ValueError, OSError):
            pass


def keep_fds(fds):
    """Moves `fds` to 1000, 1001, ... and closes every other descriptor above 2."""
    moved = []
    for i, fd in enumerate(fds):
        os.dup2(fd, 1000 + i)
        moved.append(1000 + i)
    os.closerange(3, 1000)
    os.closerange(1000 + len(fds), 1 << 16)
    return moved


def other_pids(exclude=()):
    me = os.getpid()
    return [int(n) for n in os.listdir("/proc")
            if n.isdigit() and int(n) != me and int(n) != 1 and int(n) not in exclude]


def same_uid(pid, include_zombies=True):
    """`pid` runs as this uid (and, unless `include_zombies`, has not exited: a zombie can do
    nothing and is reaped by its parent)."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False
        if include_zombies:
            return True
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(sweep_all, pgids=(), spare=(), deadline_s=5.0):
    """Kills and reaps every process left by the last run; False if some would not die.

    sweep_all: the server owns its uid or pid namespace, so every other process of its uid
    (except the pids in `spare`: the judge and the zygote) belongs to the run. Otherwise only the run's process groups
    are killed.
    """
    end = time.monotonic() + deadline_s
    pause = 0.00005  # processes just sent SIGKILL are usually gone within microseconds
    while True:
        for pgid in pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        left = [p for p in other_pids(spare) if same_uid(p, False)] if sweep_all else ()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_all()
        if not sweep_all or not left:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


def run_pids(exclude, sweep_all, pgids):
    """The processes of the current run: every other process of this uid when the server owns
    its uid or pid namespace (`sweep_all`), else the members of the run's process groups."""
    if sweep_all:
        return [p for p in other_pids(exclude) if same_uid(p)]
    members = []
    for pid in other_pids(exclude):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[2]) in pgids:
                    members.append(pid)
        except (OSError, ValueError, IndexError):
            pass
    return members


def tree_memory_kb(pids):
    """Resident memory of `pids` together, KiB.

    A cheap RSS sum; if that looks over budget, the caller asks `tree_pss_kb`, which does not
    count pages shared by forked children several times."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page_kb
        except (OSError, ValueError, IndexError):
            pass
    return total


def tree_pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
    return total


def wipe(path):
    """Removes `path` (whatever the run did to its permissions) and recreates it empty."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
                except (OSError, NotImplementedError):
                    pass
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def empty_dir(path, keep=()):
    """Removes everything inside `path` except the names in `keep`."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        if name in keep:
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            wipe(full)
            os.rmdir(full)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass


def remove_ipc():
    """Removes every SysV shared memory segment, semaphore set and message queue visible here
    (the ipc namespace is the worker's own)."""
    if _libc is None:
        return
    for table, ctl in (("shm", _libc.shmctl), ("sem", _libc.semctl), ("msg", _libc.msgctl)):
        try:
            with open(f"/proc/sysvipc/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1:
                if table == "sem":
                    ctl(int(fields[1]), 0, _IPC_RMID, None)
                else:
                    ctl(int(fields[1]), _IPC_RMID, None)
