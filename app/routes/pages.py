"""The browser app's page: `GET /` renders templates/index.html (scripts, styles: static/)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates


def page_router(templates_dir: Path) -> APIRouter:
    """`GET /` from `templates_dir` (Settings.templates_dir)."""
    router = APIRouter()
    templates = Jinja2Templates(directory=str(templates_dir))

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        """The single-page app: drawing pad, network overview, stepper and detail view."""
        return templates.TemplateResponse(request, "index.html", {"title": "cnnviz"})

    return router
