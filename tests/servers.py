"""A real server for the tests: a command on a free port, ready once /api/health answers.

Used by the smoke test (`cnnviz serve`) and the end-to-end fixture (`python -m uvicorn`). The
server's output goes to a log file, not a pipe: a pipe nobody reads fills up and blocks a chatty
server.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(
    args: list[str],
    port: int,
    env: dict | None = None,
    timeout: float = 30,
    cwd: Path = ROOT,
) -> Server:
    """Run `args` (which must serve on 127.0.0.1:`port`) in `cwd` and wait until it answers."""
    log = Path(tempfile.mkstemp(prefix="cnnviz-server-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(server.base + "/api/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop(timeout=1)
            pytest.fail(
                f"server did not start (exit {proc.returncode}):\n{server.output()[-3000:]}"
            )
        time.sleep(0.1)
