"""The event-loop side of `WebSocket /api/train`: read and validate client messages, hand
them to the run's thread, send what the run's `Outbox` holds, close with a proper code.

Close codes: 1000 the client closed; 1001 idle timeout; 1007 a message that is not JSON;
1008 any other invalid message (the error names the field); 1009 a message over
`Settings.train_max_message_bytes`; 1011 an internal error; 1013 too many runs in this worker.
Every close is preceded by `{"type": "error", "fatal": true, "detail": [{"loc", "msg",
"type"}]}` (except the client's own close).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..errors import ApiError
from ..settings import Settings
from .serialize import dumps
from .train_protocol import parse_command, parse_start
from .training import Outbox, RunSlots, TrainRun, prepare_network, release_memory

STEP_INTERVAL_S = 0.05  # at most 20 step messages per second
COMMANDS_WAITING = 32  # client commands queued for the run before the socket is not read

_CLOSE_FOR = {"json_invalid": 1007, "too_large": 1009, "too_many_runs": 1013, "idle": 1001}


def _error(loc, msg: str, type: str) -> bytes:
    return dumps(
        {"type": "error", "fatal": True, "detail": [{"loc": list(loc), "msg": msg, "type": type}]}
    )


def slots(ws: WebSocket, s: Settings) -> RunSlots:
    """This app's run counter (one per worker process), made on first use."""
    state = ws.app.state
    if getattr(state, "train_slots", None) is None:
        state.train_slots = RunSlots(s.train_max_runs)
    return state.train_slots


def origin_allowed(ws: WebSocket, s: Settings) -> bool:
    """Browsers send Origin with a WebSocket: only this site's own pages (or the configured CORS
    origins) may start runs; other clients (no Origin) are allowed."""
    origin = ws.headers.get("origin")
    if not origin:
        return True
    if origin in s.cors_origins:
        return True
    return urlsplit(origin).netloc == ws.headers.get("host", "")


class TrainSession:
    def __init__(self, ws: WebSocket, s: Settings):
        self.ws, self.s = ws, s
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.outbox = Outbox(
            s.train_max_queued, lambda: self.loop.call_soon_threadsafe(self.wake.set)
        )
        self.run: TrainRun | None = None
        self.closed = False

    async def _send_now(self, payload: bytes) -> None:
        await self.ws.send_text(payload.decode())

    async def _fail(self, exc: ApiError) -> None:
        """Send the error, then close with its code."""
        code = _CLOSE_FOR.get(exc.type, 1008)
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._send_now(_error(exc.loc, exc.msg, exc.type))
            await self.ws.close(code, exc.type[:100])

    async def _receive(self, timeout: float) -> str | bytes | None:
        """The next message's text or bytes; None when the client left."""
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg["type"] == "websocket.disconnect":
            return None
        return msg.get("text") if msg.get("text") is not None else msg.get("bytes")

    async def serve(self) -> None:
        ws, s = self.ws, self.s
        if not origin_allowed(ws, s):
            await ws.close(1008, "origin not allowed")
            return
        await ws.accept()
        try:
            raw = await self._receive(s.train_idle_timeout_s)
        except TimeoutError:
            await self._fail(ApiError(("message",), "no 'start' message arrived in time", "idle"))
            return
        except WebSocketDisconnect:
            return
        if raw is None:
            return
        counter = slots(ws, s)
        try:
            start = parse_start(raw, s)
            net = await anyio.to_thread.run_sync(prepare_network, start, s)
            if not counter.acquire():
                raise ApiError(
                    ("start",),
                    f"this server already trains {counter.limit} runs (its limit); try again later",
                    "too_many_runs",
                )
        except ApiError as exc:
            await self._fail(exc)
            return
        try:
            self.run = TrainRun(start, net, s, self.outbox)
            self.run.start()
            sender = asyncio.create_task(self._sender())
            try:
                if await self._reader():  # an error to deliver before closing: let it go out
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(asyncio.shield(sender), 10)
            finally:
                self.run.close()
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
                await anyio.to_thread.run_sync(self.run.thread.join)
        finally:
            counter.release()
            self.run = None
            await anyio.to_thread.run_sync(release_memory)
            if not self.closed and ws.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await ws.close(1000)

    def _queue_error(self, exc: ApiError) -> bool:
        """Queue the error (after what the run already said) and the close; True."""
        code = _CLOSE_FOR.get(exc.type, 1008)
        self.outbox.put(_error(exc.loc, exc.msg, exc.type), close_code=code)
        return True

    async def _reader(self) -> bool:
        """Read commands until the client leaves (False) or sends a bad one (True)."""
        s = self.s
        while not self.closed:
            try:
                raw = await self._receive(s.train_idle_timeout_s)
            except TimeoutError:
                if self.run is not None and self.run.training:
                    continue
                return self._queue_error(
                    ApiError(
                        ("message",),
                        f"no message for {s.train_idle_timeout_s:g} s while the run is not "
                        "training: the run is closed",
                        "idle",
                    )
                )
            except (WebSocketDisconnect, RuntimeError):
                return False
            if raw is None:
                return False
            try:
                cmd = parse_command(raw, s)
            except ApiError as exc:
                return self._queue_error(exc)
            # commands wait in the run's queue; past a few, stop reading the socket until
            # the run catches up (TCP pushes back on the client), so memory stays bounded
            while self.run.commands.qsize() >= COMMANDS_WAITING and not self.closed:
                await asyncio.sleep(0.02)
            self.run.command(cmd)
        return False

    async def _sender(self) -> None:
        last_step = 0.0
        while True:
            await self.wake.wait()
            self.wake.clear()
            while True:
                now = time.monotonic()
                step_ok = now - last_step >= STEP_INTERVAL_S
                item = self.outbox.take(step_ok)
                if item is None:
                    if not step_ok and self.outbox.has_step():
                        self.loop.call_later(STEP_INTERVAL_S - (now - last_step), self.wake.set)
                    break
                payload, close_code = item
                if payload.startswith(b'{"type":"step"'):
                    last_step = now
                try:
                    await self._send_now(payload)
                    if close_code is not None:
                        self.closed = True
                        await self.ws.close(close_code)
                        return
                except Exception:  # the client is gone: the reader sees it and ends the run
                    return
