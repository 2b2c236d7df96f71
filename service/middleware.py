"""The raw ASGI middlewares: request id, metrics and the last line against stack traces; the body limit.

Written as plain ASGI (not ``BaseHTTPMiddleware``) because they run on every
request and must stay cheap.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import REQUEST_ID_HEADER, BodyTooLargeError, error_response, internal_error_response
from service.metrics import Metrics

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            text = value.decode("latin-1")
            # A client's id is kept only when it cannot inject anything into logs or headers.
            return text if _SAFE_ID.match(text) else None
    return None


class _HTTPMiddleware:
    """Passes anything but HTTP (lifespan, websockets) straight through to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestMiddleware(_HTTPMiddleware):
    """Give every request an id (the client's ``X-Request-ID`` if sane), time it, count it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False
        header = (_HEADER, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != _HEADER]
                headers.append(header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the handlers missed it: answer 500 without details
            if response_started:
                raise
            response = internal_error_response(
                request_id, exc, scope.get("method", "?"), scope.get("path", "?")
            )
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                scope.get("method", "?"), path, status, time.perf_counter() - started
            )


UPLOAD_PATH = "/v1/batch"
"""File uploads go here and have their own, larger limit."""


class BodyLimitMiddleware(_HTTPMiddleware):
    """Refuse bodies over ``max_bytes`` with 413, before reading them when Content-Length says so.

    File uploads to ``POST /v1/batch`` have their own limit, ``upload_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int | None = None) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes or max_bytes

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.upload_bytes if scope.get("path") == UPLOAD_PATH else self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            request_id = scope.get("state", {}).get("request_id", "-")
            response = error_response(
                413,
                "body_too_large",
                f"请求体过大（上限 {limit} 字节）",
                f"the request body has {declared} bytes; the limit is {limit}",
                request_id,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
