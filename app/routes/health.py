"""GET /api/health: liveness, versions and the installed models."""

from __future__ import annotations

from fastapi import APIRouter

from .. import services
from ..schemas import HealthResponse
from ..services.custom import limits
from . import ApiRoute, SettingsDep

router = APIRouter(prefix="/api", tags=["health"], route_class=ApiRoute)


_EXAMPLE = {"status": "ok", "version": "0.1.0", "engine": "0.1.0", "models": ["digits"]}


@router.head("/health", include_in_schema=False)
@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Is the server up?",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def health(s: SettingsDep) -> dict:
    """`{"status": "ok", "version": ...}`, the engine's version, the installed models and the
    custom-network caps ("limits")."""
    return {**services.health(s), "limits": limits(s)}
