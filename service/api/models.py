"""Model versions: the active one, the list, and switching (keyed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from model import ModelNotFoundError
from model.artifact import read_manifest
from model.registry import parse_time
from service.dependencies import ActiveModelDep, PredictorDep
from service.errors import NotFoundError, ServiceError
from service.schemas import (
    ActivateRequest,
    AuditEntryOut,
    ModelOut,
    ModelSummary,
    ReasonRequest,
    error_responses,
)
from service.security import KeyFirstRoute, caller_identity, require_api_key

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=KeyFirstRoute)


def _model_out(manifest: dict[str, Any], active: bool) -> ModelOut:
    return ModelOut(
        version=manifest["version"],
        created_at=manifest.get("created_at"),
        active=active,
        mode=manifest.get("mode"),
        labels=manifest.get("labels", {}),
        thresholds=manifest.get("thresholds", {}),
        metrics=manifest.get("metrics", {}),
        training_data=manifest.get("training_data", {}),
        segmenter=manifest.get("segmenter", {}),
        libraries=manifest.get("libraries", {}),
        evaluation=manifest.get("evaluation"),
    )


class NoRollbackError(ServiceError):
    status = 409
    code = "no_rollback"
    message_zh = "审计日志中没有可回退的上一个版本"


class InvalidTimeError(ServiceError):
    status = 422
    code = "validation_error"
    message_zh = "时间格式不对，请写成 2026-03-03T10:00（UTC）或带 +08:00"


_KEYED = error_responses(
    {
        400: "malformed_json: the body is not JSON",
        401: "unauthorized: API key missing or wrong, or none configured",
        404: "not_found: no such version",
        409: "model_rejected: the version fails verification (checksum), loading or a trial prediction",
        413: "body_too_large: body over XINXI_MAX_BODY_BYTES",
        422: "validation_error: wrong types",
    }
)


@router.get(
    "/active",
    response_model=ModelOut,
    summary="当前模型 / the model answering now",
    responses=error_responses({503: "model_not_loaded: no model loaded yet"}),
)
def active_model(predictor: PredictorDep) -> ModelOut:
    """Version, creation time, labels and cross-validated metrics of the model that answers predictions."""
    return _model_out(predictor.manifest, active=True)


@router.get("", response_model=list[ModelSummary], summary="模型版本列表 / model versions")
def list_models(active: ActiveModelDep) -> list[ModelSummary]:
    """Every complete model version in the data directory, oldest first."""
    active_id = active.registry.active_id()
    return [
        ModelSummary(
            version=m["version"],
            created_at=m.get("created_at"),
            active=m["version"] == active_id,
            items=m.get("training_data", {}).get("items"),
            store_up_to_change=((m.get("training_data") or {}).get("store") or {}).get("up_to_change"),
            passed_gate=(m.get("evaluation") or {}).get("passed"),
        )
        for m in active.registry.versions()
    ]


@router.get("/audit", response_model=list[AuditEntryOut], summary="切换记录 / activation audit log")
def audit_log(active: ActiveModelDep) -> list[AuditEntryOut]:
    """Every activation, oldest first: when, which version, from which, who and why."""
    return [AuditEntryOut(**_entry(e)) for e in active.registry.audit_log()]


@router.get(
    "/at",
    response_model=AuditEntryOut,
    summary="某时刻的模型 / the version active at a time",
    responses=error_responses({404: "not_found: no version was active then", 422: "validation_error: bad time"}),
)
def active_at(
    active: ActiveModelDep,
    time: Annotated[str, Query(description="ISO 8601, e.g. 2026-03-03T10:00 (UTC) or 2026-03-03T18:00+08:00")],
) -> AuditEntryOut:
    """Which version answered at `time` (so: which model tagged an item then), from the audit log."""
    try:
        parse_time(time)
    except ValueError as exc:
        raise InvalidTimeError(str(exc)) from exc
    found = active.registry.active_at(time)
    if found is None:
        raise NotFoundError(f"no model version was recorded as active at {time}", "该时刻没有记录在案的模型")
    return AuditEntryOut(**_entry(found))


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {"at": entry.get("since", entry.get("at")), **{k: entry.get(k) for k in
            ("version", "previous", "action", "who", "why")}}


@router.put(
    "/active",
    response_model=ModelOut,
    dependencies=[Depends(require_api_key)],
    summary="切换模型（需密钥）/ activate a version (API key)",
    responses=error_responses(
        {
            400: "malformed_json: the body is not JSON",
            401: "unauthorized: API key missing or wrong, or none configured",
            404: "not_found: no such version",
            409: "model_rejected: the version fails verification, loading or a trial prediction",
            413: "body_too_large: body over XINXI_MAX_BODY_BYTES",
            422: "validation_error: no version string",
        }
    ),
)
def activate_model(body: ActivateRequest, request: Request, active: ActiveModelDep) -> ModelOut:
    """Load and try a version, then make it active for every worker and every `xinxi` command and serve it here."""
    predictor = _activate(active, body.version, caller_identity(request), None, "activate")
    return _model_out(predictor.manifest, active=True)


@router.get(
    "/rollback",
    response_model=ModelOut,
    summary="回退会启用的版本 / the version a rollback would bring back",
    responses=error_responses({409: "no_rollback: no earlier version recorded"}),
)
def rollback_target(active: ActiveModelDep) -> ModelOut:
    """What `POST /v1/models/rollback` would activate: the version active before the current one."""
    previous = active.registry.previous_id()
    if previous is None:
        raise NoRollbackError("the audit log records no version active before the current one")
    try:
        manifest = read_manifest(active.registry.path(previous))
    except ModelNotFoundError as exc:
        raise NotFoundError(str(exc), "找不到该模型版本") from exc
    return _model_out(manifest, active=False)


@router.post(
    "/rollback",
    response_model=ModelOut,
    dependencies=[Depends(require_api_key)],
    summary="回退到上一版本（需密钥）/ roll back (API key)",
    responses={**_KEYED, **error_responses({409: "no_rollback: no earlier version recorded; model_rejected"})},
)
def rollback(request: Request, active: ActiveModelDep, body: ReasonRequest | None = None) -> ModelOut:
    """Activate again the version that was active before the current one (from the audit log)."""
    previous = active.registry.previous_id()
    if previous is None:
        raise NoRollbackError("the audit log records no version active before the current one")
    reason = (body.reason if body else None) or f"rollback from {active.registry.active_id()}"
    predictor = _activate(active, previous, caller_identity(request), reason, "rollback")
    return _model_out(predictor.manifest, active=True)


@router.get(
    "/{version}",
    response_model=ModelOut,
    summary="某个模型版本 / one version",
    responses=error_responses({404: "not_found: no such version"}),
)
def show_model(version: str, active: ActiveModelDep) -> ModelOut:
    """A version's manifest: what it saw, its metrics and its evaluation against its predecessor."""
    try:
        manifest = read_manifest(active.registry.path(version))
    except ModelNotFoundError as exc:
        raise NotFoundError(str(exc), "找不到该模型版本") from exc
    return _model_out(manifest, active=active.registry.active_id() == version)


@router.post(
    "/{version}/activate",
    response_model=ModelOut,
    dependencies=[Depends(require_api_key)],
    summary="启用某个版本（需密钥）/ activate a version (API key)",
    responses=_KEYED,
)
def activate_version(
    version: str, request: Request, active: ActiveModelDep, body: ReasonRequest | None = None
) -> ModelOut:
    """Load and try a version, then make it active for every worker; the audit log records who and why."""
    predictor = _activate(active, version, caller_identity(request), body.reason if body else None, "activate")
    return _model_out(predictor.manifest, active=True)


def _activate(active: Any, version: str, who: str, why: str | None, action: str) -> Any:
    try:
        return active.activate(version, who=who, why=why, action=action)
    except ModelNotFoundError as exc:
        raise NotFoundError(str(exc), "找不到该模型版本") from exc
