"""WebSocket /api/train: one training run per connection (see docs/api.md, "Train mode")."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from ..services.train_session import TrainSession

router = APIRouter(tags=["train"])


@router.websocket("/api/train")
async def train(ws: WebSocket) -> None:
    """Start with `{"type": "start", ...}`; the run lives until the socket closes."""
    await TrainSession(ws, ws.app.state.settings).serve()
