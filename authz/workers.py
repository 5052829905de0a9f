"""Forked worker processes that never outlive the process that started them.

``ccc-authz check --workers N`` forks workers that inherit the compiled engine. Left to
themselves, they would survive a ``kill -9`` of their parent: blocked on the pool's queue (whose
write end they inherit and so never see closed), holding the caller's stdout open (the caller
waits forever for an end of file) and the audit database's file. So every worker, as it starts:

- asks Linux to kill it the moment its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``);
- watches a pipe whose only write end the parent holds: the kernel closes it when the parent dies,
  however it dies, and the worker exits on the end of file (the portable fallback: any POSIX);
- lets go of the caller's stdin and stdout (it never uses them), so even while it ends, the
  caller's pipe is closed by the parent's death alone;
- takes back the default SIGTERM, so the parent can end it.

The parent ends its workers when it is told to stop (``end_workers`` from a SIGTERM handler)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ParentLink:
    """A pipe made in the parent before it forks workers: the parent keeps its write end open for
    its whole life and never writes; a worker reads it and exits at the end of file, which comes
    when the parent dies (the kernel closes a dead process's files)."""

    def __init__(self, death_signal: bool = True) -> None:
        self.parent = os.getpid()
        self.death_signal = death_signal
        self.read_fd, self.write_fd = os.pipe()

    def in_worker(self) -> None:
        """The workers' initializer (runs in each forked worker before its first task)."""
        os.close(self.write_fd)  # else this worker itself would keep the pipe open
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: SIGTERM ends a worker
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group: the parent decides
        if self.death_signal:
            _die_with_parent()
        if os.getppid() != self.parent:  # the parent died before the death signal was asked for
            os._exit(1)
        threading.Thread(target=_exit_at_end_of_file, args=(self.read_fd,), name="parent-watch", daemon=True).start()
        _let_go_of_stdio()

    def close(self) -> None:
        """In the parent, once its workers are gone."""
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _die_with_parent() -> None:
    """Linux only: SIGKILL this process when the thread that forked it ends (the parent's main
    thread: the pool forks every worker at its first task, from the caller's thread)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # here, in the worker: `check` without workers does not load it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # on failure, the pipe below still ends it


def _exit_at_end_of_file(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os._exit(1)


def _let_go_of_stdio() -> None:
    """Stdin and stdout to /dev/null: a worker answers through the pool's own pipes, and must not
    keep the caller's pipes open (stderr stays, for a worker's last words)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)


def end_workers(grace: float = 1.0) -> None:
    """Ends every worker this process started: SIGTERM, then SIGKILL for any still there after
    ``grace`` seconds; each is reaped."""
    children = multiprocessing.active_children()
    for child in children:
        with contextlib.suppress(OSError):
            child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.exitcode is None:
            with contextlib.suppress(OSError):
                child.kill()
            child.join(grace)
