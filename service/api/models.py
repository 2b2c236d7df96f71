"""Model versions: the active one, the list, and switching (keyed)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends

from model import ArtifactError
from service.active_model import load_and_warm
from service.dependencies import ActiveModelDep, PredictorDep
from service.errors import NotFoundError, ServiceError
from service.schemas import ActivateRequest, ModelOut, ModelSummary
from service.security import require_api_key

log = logging.getLogger("xinxi.service")

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelRejectedError(ServiceError):
    status = 409
    code = "model_rejected"


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


@router.get("/active", response_model=ModelOut, summary="当前模型 / the model answering now")
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
    responses={
        401: {"description": "API key missing or wrong"},
        404: {"description": "no such version"},
        409: {"description": "the version fails verification, loading or a trial prediction"},
    },
)
def activate_model(body: ActivateRequest, active: ActiveModelDep) -> ModelOut:
    """Load and try a version, then make it active for every worker and every `xinxi` command and serve it here."""
    registry = active.registry
    try:
        directory = registry.path(body.version)
    except ArtifactError as exc:
        raise NotFoundError(str(exc), "找不到该模型版本") from exc
    if not directory.is_dir():
        raise NotFoundError(f"no model version {body.version!r}", "找不到该模型版本")
    # The pointer moves only once the version has predicted here: checksums alone
    # pass a bundle that is malformed inside, and other workers would follow the
    # pointer to a model that cannot load.
    try:
        predictor = load_and_warm(directory)
    except Exception as exc:  # noqa: BLE001 - a malformed bundle may raise anything
        log.warning("refused to activate model %s: %s", body.version, exc, exc_info=True)
        raise ModelRejectedError(
            f"model {body.version} cannot be loaded, so it was not activated: {exc}",
            "该模型版本无法加载，未切换",
        ) from exc
    active.install(predictor, body.version)
    return _model_out(predictor.manifest, active=True)
