"""Model versions: the active one, the list, and switching (keyed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from model import ModelNotFoundError
from service.dependencies import ActiveModelDep, PredictorDep
from service.errors import NotFoundError
from service.schemas import ActivateRequest, ModelOut, ModelSummary, error_responses
from service.security import KeyFirstRoute, require_api_key

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
        )
        for m in active.registry.versions()
    ]


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
def activate_model(body: ActivateRequest, active: ActiveModelDep) -> ModelOut:
    """Load and try a version, then make it active for every worker and every `xinxi` command and serve it here."""
    try:
        predictor = active.activate(body.version)
    except ModelNotFoundError as exc:
        raise NotFoundError(str(exc), "找不到该模型版本") from exc
    return _model_out(predictor.manifest, active=True)
