"""Which isolation is available here, and the command that starts one sandboxed worker.

Levels, strongest first (`detect()` picks the first that starts and answers):

  bwrap    bubblewrap: new user, pid, network, ipc and uts namespaces; all capabilities dropped;
           the server is pid 1 of its namespace (`--as-pid-1`: signals from runs cannot reach
           it); `/` and `/dev` read-only, read-only `/usr`; private size-capped tmpfs `/tmp` and
           `/dev/shm` and a private mqueue, emptied after every run; no /home, /root, /etc or
           project files; `--die-with-parent`, `--new-session`. Started (as root) through
           `setpriv` as a dedicated unprivileged uid, so RLIMIT_NPROC binds.
  unshare  util-linux unshare: new user, pid and network namespaces (no network, processes
           contained and killed with the namespace); the filesystem is NOT isolated beyond the
           unprivileged uid's permissions, and /tmp, /dev/shm and IPC are shared with the host.
  rlimits  resource limits and, as root, a dedicated unprivileged uid only: no network or
           filesystem isolation. Announced loudly; use only for trusted code.

The worker's code is the `inside` package (stdlib only), sent on the command line
(`server_bootstrap`) because the sandbox sees no project files.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import subprocess
import sys

LEVELS = ("bwrap", "unshare", "rlimits")
INSIDE_DIR = os.path.join(os.path.dirname(__file__), "inside")
INSIDE_MODULES = ("protocol", "hygiene", "program", "judge", "zygote", "server")  # dependency order
TMPFS_BYTES = 64 << 20
_BOOT = """
import sys, types
sources = %r
package = types.ModuleType("sbx")
package.__path__ = []
sys.modules["sbx"] = package
for name in %r:
    module = types.ModuleType("sbx." + name)
    module.__package__ = "sbx"
    sys.modules["sbx." + name] = module
    setattr(package, name, module)
    exec(compile(sources[name], "<sbx/" + name + ".py>", "exec"), module.__dict__)
del sources, package, module, name, types
sys.modules["sbx.server"].main(sys.argv[1:])
"""
_log = logging.getLogger("prm_jax.sandbox")


class SandboxUnavailable(RuntimeError):
    """No isolation level could start a sandbox here."""


def _world_executable(path: str) -> bool:
    """Every directory on the way and the file itself are usable by an unprivileged user."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts)):
        mode = os.stat(os.sep.join(parts[:i]) or os.sep).st_mode
        if not mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


@functools.lru_cache(maxsize=1)
def interpreter() -> tuple[str, str]:
    """(python executable, its installation prefix) usable inside the sandbox.

    The host's own interpreter if an unprivileged user can run it, else the system python3.
    """
    candidates = [getattr(sys, "_base_executable", sys.executable), sys.executable,
                  "/usr/bin/python3", shutil.which("python3") or ""]
    for exe in candidates:
        if exe and os.path.exists(exe) and _world_executable(exe):
            exe = os.path.realpath(exe)
            prefix = subprocess.run([exe, "-I", "-c", "import sys; print(sys.base_prefix)"],
                                    capture_output=True, text=True, timeout=30).stdout.strip()
            if prefix:
                return exe, os.path.realpath(prefix)
    raise SandboxUnavailable("no Python interpreter that an unprivileged user can run was found "
                             f"(tried {[c for c in candidates if c]})")


def is_root() -> bool:
    return os.geteuid() == 0


def _drop_privileges(uid: int) -> list[str]:
    if not is_root():
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SandboxUnavailable("running as root needs `setpriv` (util-linux) to drop to an "
                                 "unprivileged uid")
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all"]


@functools.lru_cache(maxsize=1)
def server_bootstrap() -> str:
    """`python -c` source that loads the `inside` modules as package `sbx` and starts the
    server (the sandbox sees no project files, so the sources travel on the command line)."""
    sources = {}
    for name in INSIDE_MODULES:
        with open(os.path.join(INSIDE_DIR, f"{name}.py")) as f:
            sources[name] = f.read()
    return _BOOT % (sources, INSIDE_MODULES)


def worker_command(level: str, uid: int, scratch: str,
                   cpu: int | None = None) -> tuple[list[str], bool]:
    """argv that starts one fork server (all its processes on `cpu`, when given), and whether
    it may sweep with kill(-1)."""
    exe, prefix = interpreter()
    python = [exe, "-I", "-c", server_bootstrap()]
    pin = [] if cpu is None else [f"cpu={int(cpu)}"]
    if level == "bwrap":
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        binds = ["--ro-bind", "/usr", "/usr"]
        if not prefix.startswith("/usr/"):
            binds += ["--ro-bind", prefix, prefix]
        cmd = _drop_privileges(uid) + [
            bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--as-pid-1",
            "--cap-drop", "ALL", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
            "--setenv", "LD_BIND_NOW", "1", *binds,
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
            "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm", "--mqueue", "/dev/mqueue",
            "--remount-ro", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
            "--remount-ro", "/", "--chdir", "/tmp",
            "--hostname", "sandbox", *python, "/tmp/sandbox", "sweep_all", "private_tmp", *pin]
        return cmd, True
    if level == "unshare":
        unshare = shutil.which("unshare")
        if unshare is None:
            raise SandboxUnavailable("unshare (util-linux) is not installed")
        cmd = _drop_privileges(uid) + [unshare, "--user", "--net", "--pid", "--fork",
                                       "--kill-child", "--mount-proc", *python, scratch, "sweep_all", *pin]
        return cmd, True
    if level == "rlimits":
        return (_drop_privileges(uid) + [*python, scratch, "sweep_all" if is_root() else "group", *pin],
                is_root())
    raise ValueError(f"unknown isolation level {level!r}; expected one of {LEVELS}")


_announced: set[str] = set()


def announce(level: str) -> None:
    """Says once per process which isolation is in force."""
    if level in _announced:
        return
    _announced.add(level)
    message = {
        "bwrap": "sandbox isolation: bubblewrap (user/pid/net/ipc namespaces, no capabilities, "
                 "read-only / and /usr, private /tmp and /dev/shm, unprivileged uid, rlimits)",
        "unshare": "sandbox isolation: unshare (user/pid/net namespaces, rlimits); the filesystem "
                   "is NOT isolated — install bubblewrap for full isolation",
        "rlimits": "sandbox isolation: rlimits only — NO network or filesystem isolation; do not "
                   "run untrusted code like this (install bubblewrap)",
    }[level]
    (_log.info if level == "bwrap" else _log.warning)(message)
    if level != "bwrap":
        print(f"WARNING: {message}", file=sys.stderr)
