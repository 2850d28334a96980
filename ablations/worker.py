"""Point processes that never outlive the runner: a preloaded fork server in its own process group.

``python -m ablations.worker WATCHDOG_FD CONN_FD SWEEP`` imports torch and the tasks once, then forks one
child per point it is sent. The runner holds the only write end of the watchdog pipe; when the runner ends,
however it ends (SIGKILL included), the pipe reaches EOF and a thread in the server and in every child kills
the whole process group (server, children and anything they started: loader workers, resource trackers).
The server sits in its own process group so that a terminal's Ctrl-C reaches the runner alone; the runner
then stops the children with SIGTERM, which a child turns into KeyboardInterrupt (an ``interrupted`` record).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from bench.quiet import silence_third_party

PRELOAD = ("torch", "timm", "tasks.classification", "ablations.runner")


def _watch(fd: int) -> None:
    """Kill this process group when the watchdog pipe reaches EOF (the runner is gone)."""

    def loop() -> None:
        while True:
            try:
                if os.read(fd, 1) == b"":
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=loop, name="spikebench-watchdog", daemon=True).start()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _child(watchdog: int, job: dict) -> None:
    """Run one point in a freshly forked child; never returns."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)
        _watch(watchdog)
        from ablations.runner import run_point

        if run_point(**job).get("elsewhere"):
            code = 75  # another process holds the point, or has finished it
    except KeyboardInterrupt:
        code = 130
    except BaseException as err:  # run_point records failures; this is a last resort
        print(f"spikebench: worker: {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve(watchdog: int, conn_fd: int) -> None:
    """Fork a child per job received on ``conn_fd``; report ``(pid, exit code)`` when each ends."""
    _watch(watchdog)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(conn_fd)
    silence_third_party()  # the points' logs: progress and records, not other packages' notices
    for name in PRELOAD:
        __import__(name)
    children: set[int] = set()
    open_conn = True
    while open_conn or children:
        if open_conn and conn.poll(0.05):
            try:
                job = conn.recv()
            except EOFError:
                open_conn = False
                continue
            pid = os.fork()
            if pid == 0:
                conn.close()
                _child(watchdog, job)
            children.add(pid)
            conn.send(("started", job["run_dir"], pid))
        elif not open_conn:
            time.sleep(0.05)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            if open_conn:
                try:
                    conn.send(("exited", pid, os.waitstatus_to_exitcode(status)))
                except OSError:
                    open_conn = False


class ForkServer:
    """The runner's handle on a worker server: ``start(job)`` → pid, ``events()`` → ended (pid, code)."""

    def __init__(self, sweep: str | Path) -> None:
        import socket

        self.watch_r, self.watch_w = os.pipe()  # the runner keeps the only write end
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ablations.worker", str(self.watch_r), str(theirs.fileno()), str(sweep)],
            pass_fds=(self.watch_r, theirs.fileno()),
            process_group=0,
            env=env,
        )
        os.close(self.watch_r)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.pending: list[tuple[int, int]] = []

    def _recv(self) -> tuple:
        msg = self.conn.recv()
        if msg[0] == "exited":
            self.pending.append((msg[1], msg[2]))
        return msg

    def start(self, job: dict) -> int:
        """Fork a child running ``run_point(**job)``; its pid."""
        self.conn.send(job)
        while True:
            msg = self._recv()
            if msg[0] == "started":
                return msg[2]

    def ended(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Children that ended: ``(pid, exit code)`` (negative: killed by that signal); waits up to
        ``timeout`` seconds for one when none is waiting."""
        if not self.pending and self.conn.poll(timeout):
            try:
                self._recv()
            except EOFError:
                raise RuntimeError("the worker server died") from None
        while self.conn.poll(0):
            self._recv()
        out, self.pending = self.pending, []
        return out

    def signal_children(self, pids: list[int], sig: int = signal.SIGTERM) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Stop the server and everything in its process group."""
        try:
            self.conn.close()
        finally:
            os.close(self.watch_w)  # EOF: the server and any child left kill their group
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
