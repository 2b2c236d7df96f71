"""API keys, the request body limit and CORS.

Keys come from ``XINXI_API_KEYS`` and are compared in constant time; a key is
never logged or echoed. Endpoints that change state always require a key;
prediction requires one only when ``XINXI_PREDICT_REQUIRES_KEY`` is set. CORS
is off unless ``XINXI_CORS_ORIGINS`` names origins.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import UnauthorizedError, error_response
from service.settings import Settings


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def key_is_valid(token: str, settings: Settings) -> bool:
    """Whether ``token`` equals one of the configured keys, in time independent of where they differ."""
    candidate = token.encode("utf-8")
    matched = False
    for key in settings.api_keys:
        # No early exit: every key is compared, so timing does not tell which one matched.
        matched |= hmac.compare_digest(candidate, key.get_secret_value().encode("utf-8"))
    return matched


async def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_api_key(request: Request, settings: Annotated[Settings, Depends(settings_of)]) -> None:
    """Dependency of every endpoint that changes state (async: trivial work, no thread hop)."""
    if not settings.api_keys:
        raise UnauthorizedError(
            "this endpoint needs an API key, but none is configured on the server (set XINXI_API_KEYS)",
            "该接口需要 API 密钥，但服务端未配置（请设置 XINXI_API_KEYS）",
        )
    token = _bearer_token(request)
    if token is None or not key_is_valid(token, settings):
        raise UnauthorizedError()


async def require_predict_key(request: Request, settings: Annotated[Settings, Depends(settings_of)]) -> None:
    """Dependency of the prediction endpoint: keyed only when the setting says so."""
    if settings.predict_requires_key:
        await require_api_key(request, settings)


class BodyTooLarge(HTTPException):
    """Raised while reading a streamed body that passes the limit; mapped to 413 ``body_too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is over {limit} bytes")


UPLOAD_PATH = "/v1/batch"


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, before reading them when Content-Length says so.

    File uploads to ``POST /v1/batch`` have their own, larger limit (``upload_bytes``).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
                    raise BodyTooLarge(limit)
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


def install_security(app: FastAPI, settings: Settings) -> None:
    """Body limit always; CORS only for the origins the settings name."""
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
