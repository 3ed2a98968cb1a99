"""app.main.reuse_freed_memory: memory a request frees is reused by the next one instead of
going back to the OS and being page-faulted in again (~1,600 faults per lean digit trace
under uvicorn before), and every worker sets it as it starts (lifespan).

Counted in fresh processes by minor page faults, never timed. The pattern is a request's: many
1 MiB blocks (tensors) and a 5 MiB one (the response) allocated, touched, freed together.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PATTERN = r"""
import resource, sys
sys.path.insert(0, {root!r})
mode = sys.argv[1]
if mode == "call":
    from app.main import reuse_freed_memory
    assert reuse_freed_memory()
elif mode == "lifespan":
    from fastapi.testclient import TestClient
    from app.main import create_app
    from app.settings import Settings
    with TestClient(create_app(Settings())) as c:
        assert c.get("/api/health").status_code == 200

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

counts = []
for _ in range(6):
    f0 = faults()
    blocks = [bytearray(1 << 20) for _ in range(16)]  # zero-filled: every page touched
    body = bytearray(5 << 20)
    del blocks, body
    counts.append(faults() - f0)
print(max(counts[2:]))
"""


def _faults_per_round(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PATTERN.format(root=str(ROOT)), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout.split()[-1])


def test_without_it_glibc_gives_the_memory_back_and_faults_it_in_again():
    # the control: the pattern does hit the problem (21 MiB = 5,376 pages per round)
    assert _faults_per_round("none") > 2000


def test_reuse_freed_memory_keeps_the_freed_blocks_for_the_next_round():
    assert _faults_per_round("call") < 200


def test_every_worker_sets_it_when_it_starts():
    assert _faults_per_round("lifespan") < 200
