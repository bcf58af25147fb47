"""What keeps one request from holding the server: a body size limit, a bounded pool for the
solver work with a queue limit and a wait limit, and the cap on the solver's own time limit.

The solver work runs in threads: CP-SAT stops at its time limit (capped by
`max_solver_time_s`), and a request whose answer takes longer than `request_timeout_s` (queue
included) gets HTTP 503 while its thread runs out its time limit; no more than
`solver_threads` solves run at once, and no more than `max_waiting` wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ServerLimits(BaseModel):
    """The server's limits; `fitplan serve --help` shows the ones that are flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(default=2 << 20, ge=1024)  # a JSON question, or a form with one config.json
    solver_threads: int = Field(default=2, ge=1)  # solves at once (CI and the dev machines have 2 cores)
    max_waiting: int = Field(default=32, ge=0)  # requests queued behind them; more get 503 at once
    request_timeout_s: float = Field(default=60.0, gt=0)  # queue + answer, then 503
    max_solver_time_s: float = Field(default=10.0, gt=0)  # cap on a request's --time-limit
    max_top_k: int = Field(default=20, ge=1)  # cap on a request's --top
    max_connections: int = Field(default=64, ge=1)  # uvicorn's limit_concurrency: 503 beyond it


class ServerBusy(Exception):
    """The pool is full or the answer took longer than the request timeout: HTTP 503."""


class SolverPool:
    """Runs blocking solver calls in `solver_threads` threads for the event loop, refusing work
    beyond `max_waiting` queued calls and giving up waiting after `request_timeout_s`."""

    def __init__(self, limits: ServerLimits) -> None:
        self._limits = limits
        self._executor = ThreadPoolExecutor(max_workers=limits.solver_threads, thread_name_prefix="fitplan-solver")
        self._admitted = threading.BoundedSemaphore(limits.solver_threads + limits.max_waiting)

    async def run(self, func: Callable[..., T], *args) -> T:
        if not self._admitted.acquire(blocking=False):
            raise ServerBusy(f"the server is answering {self._limits.solver_threads + self._limits.max_waiting} "
                             "questions already: try again in a moment")
        try:
            future = self._executor.submit(func, *args)
        except BaseException:
            self._admitted.release()
            raise
        future.add_done_callback(lambda _done: self._admitted.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._limits.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # drops it if it has not started; a running solve stops at its time limit
            raise ServerBusy(f"no answer within {self._limits.request_timeout_s:g} s: "
                             "try a shorter time_limit or fewer runners-up") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BodySizeLimit:
    """ASGI middleware: HTTP 413 for a request body over `max_bytes`, judged on its
    Content-Length and on the bytes that arrive (a chunked body has no length). The body is read
    before the app sees it, so the app never holds a partial one."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect as usual

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        body = (f'{{"error": "the request body is over {self.max_bytes} bytes: '
                f'a question is a few hundred bytes, a config.json a few KB"}}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
