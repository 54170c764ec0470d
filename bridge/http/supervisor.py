"""``bridge serve --workers N``: N processes over one listening socket and one data_dir.

The parent binds the socket, forks the workers (before it starts any thread) and then
only watches them: each worker builds its own application (pool, caches, coordinator:
bridge.coordination with "data-dir") and serves the inherited socket with uvicorn, where
the kernel hands each new connection to one worker. A worker that dies is started again
after a pause; SIGTERM or SIGINT to the parent is passed to every worker, which drains as
a lone bridge does (bridge.http.drain), and the parent exits when they all have: with 0
when every one exited 0. The workers sit in a process group of their own, so a terminal's
Ctrl-C reaches them once, through the parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("bridge.http")

RESTART_PAUSE = 1.0


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP, and with it on each answer waited 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_workers(count: int, sock: socket.socket, serve: Callable[[int], int]) -> int:
    """Run ``serve(index)`` in ``count`` forked processes until a signal stops them; the
    exit status: 0 when no worker failed."""
    stopping = False
    workers: dict[int, int] = {}  # pid -> index

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 1
            try:
                status = serve(index)
            except BaseException:  # os._exit below would end it without a word
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)
        workers[pid] = index

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):  # exited: wait() collects it
                os.kill(pid, signal.SIGTERM)

    for index in range(count):
        start(index)  # the parent keeps the socket open, for workers started again
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = workers.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        failed = failed or code != 0
        if not stopping:
            log.warning("worker %d (pid %d) exited with %d; starting it again", index, pid, code)
            time.sleep(RESTART_PAUSE)
            if not stopping:
                start(index)
    return 1 if failed else 0
