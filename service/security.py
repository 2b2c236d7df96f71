"""API keys, the request body limit, CORS, and who may write the data directory.

Keys come from ``XINXI_API_KEYS`` and are compared in constant time; a key is
never logged or echoed. Endpoints that change state always require a key;
prediction requires one only when ``XINXI_PREDICT_REQUIRES_KEY`` is set. CORS
is off unless ``XINXI_CORS_ORIGINS`` names origins (the middlewares themselves
are in :mod:`service.middleware`). At start-up the service warns when other
users can write its data directory (:func:`data_dir_warning`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import UnauthorizedError
from service.middleware import BodyLimitMiddleware
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


def caller_identity(request: Request) -> str:
    """Who a keyed request came from, as audit logs record it: a short SHA-256 fingerprint of its key."""
    token = _bearer_token(request)
    if token is None:
        return "api:anonymous"
    return "api-key:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


async def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# Only for OpenAPI: marks each keyed operation with the bearer scheme, so /docs and generated
# clients know which ones need the key. The header itself is read by require_api_key.
_BEARER = HTTPBearer(
    auto_error=False, scheme_name="apiKey", description="one of XINXI_API_KEYS: `Authorization: Bearer <key>`"
)


async def require_api_key(
    request: Request,
    settings: Annotated[Settings, Depends(settings_of)],
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
) -> None:
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


_KEY_CHECKS = (require_api_key, require_predict_key)


class KeyFirstRoute(APIRoute):
    """A route whose API key, if it has one, is checked before its body is read.

    FastAPI reads and parses the body before it runs any dependency, so a
    keyed route without a key answered 400 ``malformed_json`` or 422 to a
    broken body, and spent the work of reading it, where 401 is due. The
    ``Depends(require_...)`` of a route marks it keyed; this runs that check
    first (the dependency then passes again, cheaply).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        checks = [d.dependency for d in self.dependencies if d.dependency in _KEY_CHECKS]
        if not checks:
            return handler

        async def key_first(request: Request) -> Response:
            settings: Settings = request.app.state.settings
            for check in checks:
                await check(request, settings)
            return await handler(request)

        return key_first


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


def data_dir_warning(data_dir: Path) -> str | None:
    """Why other users could change what the service serves, with the command that stops it; None if they cannot.

    Looks at the data directory, ``models/``, the ``ACTIVE`` pointer and every
    version directory: any of them writable by the group or by others, or
    owned by another user, lets someone else replace a model or the pointer.
    (Model files cannot run code when loaded; they can still be replaced by
    a model that answers wrongly.)
    """
    models = data_dir / "models"
    paths = [data_dir, models, models / "ACTIVE"]
    try:
        paths += sorted(p for p in models.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        pass
    found: list[str] = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            continue
        who = [name for bit, name in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if status.st_mode & bit]
        if who:
            found.append(f"{path} is writable by {' and '.join(who)}")
        if status.st_uid != os.geteuid():
            found.append(f"{path} belongs to another user (uid {status.st_uid})")
    if not found:
        return None
    shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
    return (
        f"other users can change the models this service serves: {shown}. "
        f"Run `chmod -R go-w {data_dir}` (and `chown -R` it to the service's user if another user owns it)"
    )
