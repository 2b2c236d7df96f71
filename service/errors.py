"""The one place where exceptions become HTTP responses.

Every error body has the same shape::

    {"error": {"code": "text_too_long", "message_zh": "...", "message_en": "...",
               "request_id": "...", "details": [...]}}

``code`` is stable and documented in the README; clients branch on it, not on
the messages. No stack trace or exception text from unexpected failures ever
reaches a client: those are logged with the request id and answered with
``internal_error``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.errors import ArtifactError, InvalidItemError, XinxiError, describe_error

log = logging.getLogger("xinxi.service")

REQUEST_ID_HEADER = "X-Request-ID"


class ServiceError(Exception):
    """An error the service answers on purpose, with its status and stable code."""

    status = 500
    code = "internal_error"
    message_zh = "服务内部错误，请稍后重试或联系管理员"
    message_en = "internal error; retry later or contact the administrator"
    fixed_headers: dict[str, str] = {}
    """Headers every response of this error carries (``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(
        self,
        message_en: str | None = None,
        message_zh: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message_en or self.message_en)
        if message_en is not None:
            self.message_en = message_en
        if message_zh is not None:
            self.message_zh = message_zh
        self.details = details
        self.headers = {**self.fixed_headers, **(headers or {})} or None


class MalformedJSONError(ServiceError):
    status = 400
    code = "malformed_json"
    message_zh = "请求体不是合法的 JSON"
    message_en = "the request body is not valid JSON"


class ValidationFailedError(ServiceError):
    status = 422
    code = "validation_error"
    message_zh = "请求内容不符合要求，请检查字段"
    message_en = "the request does not match the schema"


class TooManyItemsError(ServiceError):
    status = 422
    code = "too_many_items"


class BodyTooLargeError(StarletteHTTPException):
    """A request body over ``XINXI_MAX_BODY_BYTES``, found while reading a body sent without a length.

    An HTTP exception, not a :class:`ServiceError`: FastAPI turns any other
    exception raised while it reads the body into a 400. Answered as 413
    ``body_too_large`` by the HTTP handler below.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is over the limit of {limit} bytes")


class ModelRejectedError(ServiceError):
    """A version that fails verification, loading or a trial prediction; the active model is not changed."""

    status = 409
    code = "model_rejected"


class TextTooLongError(ServiceError):
    status = 413
    code = "text_too_long"


class UnauthorizedError(ServiceError):
    status = 401
    code = "unauthorized"
    message_zh = "缺少或无效的 API 密钥（Authorization: Bearer ...）"
    message_en = "missing or invalid API key (Authorization: Bearer ...)"
    fixed_headers = {"WWW-Authenticate": "Bearer"}


class ModelNotLoadedError(ServiceError):
    status = 503
    code = "model_not_loaded"
    message_zh = "模型尚未加载完成，请稍后重试"
    message_en = "no model is loaded yet; retry shortly"
    fixed_headers = {"Retry-After": "5"}


class StoreUnavailableError(ServiceError):
    """The database does not answer: recording and reading items fail, prediction goes on."""

    status = 503
    code = "store_unavailable"
    message_zh = "数据库暂不可用，条目未保存，请稍后重试；预测功能不受影响"
    message_en = "the database is not reachable; nothing was stored, retry later (prediction still works)"
    fixed_headers = {"Retry-After": "10"}


class NotReadyError(ServiceError):
    status = 503
    code = "not_ready"
    message_zh = "服务尚未就绪"
    message_en = "the service is not ready"


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"
    message_zh = "找不到请求的资源"
    message_en = "not found"


# Library errors: their messages are written for people (they name the item
# and what is wrong), so they go to the client as the English message.
_LIBRARY_ERRORS: list[tuple[type[XinxiError], int, str, str]] = [
    (InvalidItemError, 422, "invalid_item", "条目无法分析（正文为空或格式不对）"),
    (ArtifactError, 503, "model_unavailable", "模型文件不可用"),
]

_HTTP_CODES = {
    400: ("bad_request", "请求无效", "bad request"),
    401: ("unauthorized", UnauthorizedError.message_zh, UnauthorizedError.message_en),
    403: ("forbidden", "没有权限", "forbidden"),
    404: ("not_found", NotFoundError.message_zh, NotFoundError.message_en),
    405: ("method_not_allowed", "不支持该请求方法", "method not allowed"),
    413: ("body_too_large", "请求体过大", "the request body is over the limit"),
    415: ("unsupported_media_type", "请使用 application/json", "use application/json"),
}


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "-")


def error_body(
    code: str, message_zh: str, message_en: str, request_id: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message_zh": message_zh,
        "message_en": message_en,
        "request_id": request_id,
    }
    if details:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message_zh: str,
    message_en: str,
    request_id: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON error response; also used by the ASGI middleware before routing."""
    all_headers = {REQUEST_ID_HEADER: request_id, **(headers or {})}
    return JSONResponse(
        error_body(code, message_zh, message_en, request_id, details), status_code=status, headers=all_headers
    )


def _logged(request: Request, status: int, code: str, message_en: str) -> str:
    request_id = request_id_of(request)
    level = logging.ERROR if status >= 500 and status != 503 else logging.WARNING
    log.log(
        level,
        "request %s %s %s -> %d %s: %s",
        request_id,
        request.method,
        request.url.path,
        status,
        code,
        message_en,
    )
    return request_id


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back: it may be 100,000 characters of someone's text.
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type"),
        }
        for error in exc.errors()
    ][:20]


_ABSOLUTE_PATH = re.compile(r"(?<![\w/.:~-])/(?:[\w.@+~-]+/)*([\w.@+~-]+)")


def without_paths(text: str) -> str:
    """``text`` with every absolute server path cut to its last part: ``/srv/x/models/v1`` -> ``…/v1``.

    Library messages name files for the person at the command line; a client
    of the API learns nothing from them but the server's layout. The log keeps
    the whole message.
    """
    return _ABSOLUTE_PATH.sub(lambda match: f"…/{match.group(1)}", text)


def _public_details(details: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not details:
        return details
    return [{k: without_paths(v) if isinstance(v, str) else v for k, v in detail.items()} for detail in details]


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    request_id = _logged(request, exc.status, exc.code, exc.message_en)
    return error_response(
        exc.status,
        exc.code,
        without_paths(exc.message_zh),
        without_paths(exc.message_en),
        request_id,
        details=_public_details(exc.details),
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    if any(detail["type"] == "json_invalid" for detail in details):
        error: ServiceError = MalformedJSONError(details=details)
    else:
        where = "; ".join(f"{'.'.join(d['loc'][1:]) or 'body'}: {d['msg']}" for d in details[:3])
        error = ValidationFailedError(f"the request does not match the schema ({where})", details=details)
    return await _service_error(request, error)


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, code, message_zh in _LIBRARY_ERRORS:
        if isinstance(exc, cls):
            message_en = (
                without_paths(str(exc)) if status < 500 else "the model files are unavailable; see the server log"
            )
            request_id = _logged(request, status, code, str(exc))
            return error_response(status, code, message_zh, message_en, request_id)
    request_id = _logged(request, 500, "internal_error", f"{type(exc).__name__}: {exc}")
    return error_response(500, "internal_error", ServiceError.message_zh, ServiceError.message_en, request_id)


_BODY_PARSE_FAILED = "There was an error parsing the body"
"""FastAPI's 400 for a JSON body that ``json.loads`` refused with anything but ``JSONDecodeError``."""


def _why_not_json(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    if "digits" in str(cause):
        return "it holds a number with too many digits"
    return describe_error(cause)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and exc.detail == _BODY_PARSE_FAILED and isinstance(cause, (ValueError, RecursionError)):
        # Not UTF-8, 100,000-deep nesting, a 5,000-digit number: as malformed as a missing brace.
        why = _why_not_json(cause)
        return await _service_error(
            request, MalformedJSONError(f"the request body is not valid JSON: {why}", details=[{"msg": why}])
        )
    code, message_zh, message_en = _HTTP_CODES.get(
        exc.status_code, ("http_error", "请求失败", "request failed")
    )
    if exc.status_code == 400 and isinstance(exc.detail, str):
        message_en = exc.detail
    headers = exc.headers
    allowed = _allowed_methods(request) if exc.status_code == 405 else []
    if allowed:  # pages outside the schema (the editor page) keep Starlette's own Allow
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    request_id = _logged(request, exc.status_code, code, message_en)
    return error_response(
        exc.status_code, code, message_zh, without_paths(message_en), request_id, headers=headers
    )


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route at this path.

    Starlette's 405 names only the methods of the first route that matched the
    path, so ``GET`` and ``PUT /v1/models/active``, two routes, answered
    ``Allow: GET, HEAD``. The paths come from the OpenAPI schema (built once),
    which lists every route of the API whatever FastAPI's router nests inside.
    """
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = []
        for template, operations in request.app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            methods = {method.upper() for method in operations if method in _HTTP_METHODS}
            if "GET" in methods:
                methods.add("HEAD")
            table.append((re.compile(f"^{pattern}$"), methods))
        request.app.state.allowed_methods = table
    found: set[str] = set()
    for path_pattern, path_methods in table:
        if path_pattern.match(request.url.path):
            found |= path_methods
    return sorted(found)


def internal_error_response(request_id: str, exc: BaseException, method: str, path: str) -> JSONResponse:
    """The answer to an unexpected exception: logged with its traceback, never shown to the client."""
    log.error("request %s %s %s -> 500 internal_error", request_id, method, path, exc_info=exc)
    return error_response(500, "internal_error", ServiceError.message_zh, ServiceError.message_en, request_id)


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping from exception to response on ``app``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(XinxiError, _library_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
