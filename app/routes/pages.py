"""The browser app's page: `GET /` renders templates/index.html (scripts, styles: static/)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..assets import Assets


def page_router(templates_dir: Path, assets: Assets | None) -> APIRouter:
    """`GET /` from `templates_dir` (Settings.templates_dir). The template gets `static`, the
    versioned URL prefix of the static files, and `modules`, every ES module's URL, for
    `<link rel="modulepreload">` (the browser fetches them in parallel, no import waterfall)."""
    router = APIRouter()
    templates = Jinja2Templates(directory=str(templates_dir))
    static = assets.prefix if assets else "/static"
    modules = [f"{static}/{m}" for m in assets.modules] if assets else []

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        """The single-page app: drawing pad, network overview, stepper and detail view."""
        response = templates.TemplateResponse(
            request, "index.html", {"title": "cnnviz", "static": static, "modules": modules}
        )
        # the page names the current versioned URLs: always ask the server for it
        response.headers["cache-control"] = "no-cache"
        return response

    return router
