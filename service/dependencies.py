"""What routes get from the app: settings, the active model, the batcher, the store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from model import Predictor
from service.active_model import ActiveModel
from service.batcher import PredictionBatcher
from service.metrics import Metrics
from service.security import settings_of
from service.settings import Settings
from service.store import Store


async def get_active_model(request: Request) -> ActiveModel:
    active: ActiveModel = request.app.state.active_model
    return active


async def get_predictor(active: Annotated[ActiveModel, Depends(get_active_model)]) -> Predictor:
    """The loaded predictor; 503 ``model_not_loaded`` while there is none."""
    return active.get()


async def get_batcher(request: Request) -> PredictionBatcher:
    batcher: PredictionBatcher = request.app.state.batcher
    return batcher


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(settings_of)]
ActiveModelDep = Annotated[ActiveModel, Depends(get_active_model)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
BatcherDep = Annotated[PredictionBatcher, Depends(get_batcher)]
StoreDep = Annotated[Store, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
