"""POST /v1/predict: topics, kind and quality score of 1 to 100 items."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request

from service.dependencies import BatcherDep, MetricsDep, SettingsDep, StoreDep
from service.errors import TextTooLongError, TooManyItemsError
from service.review import remember_scored
from service.schemas import PredictionOut, PredictRequest, PredictResponse, error_responses
from service.security import KeyFirstRoute, require_predict_key

router = APIRouter(prefix="/v1", tags=["predict"], route_class=KeyFirstRoute)

ERRORS = error_responses(
    {
        400: "malformed_json: the body is not JSON",
        401: "unauthorized: API key required (when XINXI_PREDICT_REQUIRES_KEY is set) or wrong",
        413: "body_too_large over XINXI_MAX_BODY_BYTES, or text_too_long over XINXI_MAX_TEXT_CHARS",
        422: "validation_error, too_many_items or invalid_item: empty or non-string text, unknown shape",
        503: "model_not_loaded: no model loaded yet",
    }
)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    dependencies=[Depends(require_predict_key)],
    summary="预测主题与类型 / score items",
)
async def predict(
    body: PredictRequest, settings: SettingsDep, batcher: BatcherDep, metrics: MetricsDep,
    request: Request, store: StoreDep, background: BackgroundTasks,
) -> Any:
    """Topics with probabilities, 动态类/综合类 with the quality score 0-100, key terms and suggestions."""
    if len(body.items) > settings.max_items:
        raise TooManyItemsError(
            f"{len(body.items)} items in one request; the limit is {settings.max_items}",
            f"一次最多提交 {settings.max_items} 条，本次 {len(body.items)} 条",
        )
    items = []
    for position, item in enumerate(body.items, start=1):
        if len(item.text) > settings.max_text_chars:
            raise TextTooLongError(
                f"item {position}: text has {len(item.text)} characters; the limit is {settings.max_text_chars}",
                f"第 {position} 条正文 {len(item.text)} 字，超过上限 {settings.max_text_chars} 字",
            )
        items.append({"id": None if item.id is None else str(item.id), "title": item.title, "text": item.text})
    # Scoring is CPU-bound. The batcher scores small batches on the event loop (cheaper than a
    # thread hand-over under the GIL) and only batches over INLINE_CHARS on its own thread.
    predictions = await batcher.predict(items)
    metrics.observe_predictions(predictions)
    if request.headers.get("x-xinxi-source", "").strip().lower() == "page" and settings.keep_predictions:
        # The editor page's items go to the review queue, after the answer is sent; programs' calls
        # are not kept (they score in bulk; POST /v1/items puts an item in the queue on purpose).
        background.add_task(remember_scored, store, items, predictions)
    version = predictions[0].model_version if predictions else None
    # Read straight from the dataclasses (pydantic-core), ~10x cheaper than Prediction.to_dict's deep copy.
    results = [PredictionOut.model_validate(p, from_attributes=True) for p in predictions]
    return PredictResponse(model_version=version or "unknown", results=results)
