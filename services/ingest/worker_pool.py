"""``custody serve ingest``: a pool of worker processes, each with its own listening socket on
the same port (``SO_REUSEPORT``), so the kernel spreads connections evenly over them.

One Python process tops out on the GIL long before the cores do (the event loop and
kafka-python's sender thread take turns on it). uvicorn's own ``workers`` share one socket, and
whichever worker wakes first accepts every waiting connection: in the benchmark all of them
landed on one worker. With a socket per worker the kernel hashes each connection to one.

The supervisor forwards SIGTERM/SIGINT to the workers and waits for their graceful shutdown;
a worker that dies takes the pool down (the service manager restarts it whole), and workers
die with the supervisor, so none is left holding the port.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from services.ingest.adapters.shared_runtime import shared_runtime
from services.settings import Settings

_PR_SET_PDEATHSIG = 1
log = logging.getLogger("custody.ingest")


def listening_socket(host: str, port: int, *, shared: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _die_with(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor was gone before the line above
        sys.exit(1)


def run_worker(host: str, port: int, grace_s: int, parent: int) -> None:
    """One worker process: its own socket on the shared port, one uvicorn server."""
    _die_with(parent)
    config = uvicorn.Config(
        "services.bootstrap:serve_ingest_app",
        factory=True,
        log_level="warning",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=grace_s,
    )
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])


def serve_pool(settings: Settings) -> int:
    """Run ``settings.ingest_workers`` workers until a signal or a worker's exit; exit code."""
    try:
        # Without SO_REUSEPORT this bind fails on any listener, so the pool never joins another
        # process (an ingest left running, say) on the port.
        listening_socket(settings.ingest_host, settings.ingest_port, shared=False).close()
    except OSError as error:
        log.error(
            "ingest cannot listen on %s:%s: %s", settings.ingest_host, settings.ingest_port, error
        )
        return 1
    context = multiprocessing.get_context("spawn")
    with shared_runtime():
        workers: list[BaseProcess] = [
            context.Process(
                target=run_worker,
                args=(
                    settings.ingest_host,
                    settings.ingest_port,
                    settings.shutdown_grace_s,
                    os.getpid(),
                ),
                name=f"ingest-worker-{index}",
            )
            for index in range(settings.ingest_workers)
        ]
        stopping = False
        failed = 0

        def forward(signum: int, _: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            for worker in workers:
                if worker.pid is not None and worker.exitcode is None:
                    os.kill(worker.pid, signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in workers:
                worker.start()
            running = list(workers)
            while running:
                multiprocessing.connection.wait([worker.sentinel for worker in running])
                for ended in [worker for worker in running if worker.exitcode is not None]:
                    running.remove(ended)
                    if not stopping:
                        log.error("%s exited with %s; stopping", ended.name, ended.exitcode)
                        failed = ended.exitcode or 1
                        forward(signal.SIGTERM, None)
            return failed
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
