"""The page's static files: versioned, immutable URLs, and the module list for modulepreload.

The page refers to its files under `/static/v-<hash>/...`, where `<hash>` is a digest of
every file's path and bytes (computed when the app is created). The ES modules import each
other with relative paths, so every module of the page lives under that same prefix, and
all of them are served with `Cache-Control: public, max-age=31536000, immutable`: a reload
requests none of them again; a new version of any file changes every URL. The plain
`/static/...` paths keep working with `Cache-Control: no-cache` and an ETag (a reload
revalidates them: 304, no body).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class Assets:
    version: str  # "v-<12 hex digits>"
    modules: tuple[str, ...]  # every .js under js/, relative to the static folder, sorted

    @property
    def prefix(self) -> str:
        return f"/static/{self.version}"


def scan(static_dir: Path) -> Assets:
    """Hash every file under `static_dir` (a few hundred KB: ~1 ms) and list the modules."""
    digest = hashlib.sha256()
    modules = []
    for path in sorted(p for p in static_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(static_dir).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        if rel.startswith("js/") and rel.endswith(".js"):
            modules.append(rel)
    return Assets("v-" + digest.hexdigest()[:12], tuple(modules))


class VersionedStaticFiles(StaticFiles):
    """StaticFiles that also serves `/<version>/<path>` (immutable) and sets Cache-Control.

    A version segment other than the current one (a page from before an upgrade) is served
    the current file, revalidated (no-cache), never cached as immutable."""

    def __init__(self, *, directory: Path, version: str):
        super().__init__(directory=str(directory))
        self.version = version

    def get_path(self, scope: Scope) -> str:
        path = super().get_path(scope)
        head, sep, rest = path.partition(os.sep)
        if sep and head.startswith("v-"):
            scope["cnnviz.cache"] = IMMUTABLE if head == self.version else REVALIDATE
            return rest
        scope["cnnviz.cache"] = REVALIDATE
        return path

    def file_response(self, full_path, stat_result, scope, status_code=200):  # type: ignore[override]
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = scope.get("cnnviz.cache", REVALIDATE)
        return response
