"""GET /api/health: liveness, versions and the installed models."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from .. import services
from ..schemas import HealthResponse
from ..settings import Settings
from . import ApiRoute, settings

router = APIRouter(prefix="/api", tags=["health"], route_class=ApiRoute)


@router.get("/health", response_model=HealthResponse, summary="Is the server up?")
def health(s: Settings = Depends(settings)) -> dict:
    """`{"status": "ok", "version": ...}`, the engine's version and the installed models."""
    return services.health(s)
