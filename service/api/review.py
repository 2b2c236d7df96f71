"""GET /v1/review: the items whose labels would teach the model most, least certain first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from service.dependencies import PredictorDep, StoreDep
from service.review import ReviewQueue
from service.schemas import ReviewOut, error_responses
from service.security import KeyFirstRoute, require_api_key

router = APIRouter(prefix="/v1", tags=["items"], route_class=KeyFirstRoute)


@router.get(
    "/review",
    response_model=ReviewOut,
    dependencies=[Depends(require_api_key)],
    responses=error_responses({
        401: "unauthorized: API key missing or wrong (editors' items are not public)",
        422: "validation_error",
        503: "store_unavailable, or model_not_loaded",
    }),
    summary="待审队列 / review queue",
)
def review(
    request: Request, store: StoreDep, predictor: PredictorDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Any:
    """Recorded-but-unlabelled and recently scored items, ranked by model.uncertainty.review_priority."""
    queue: ReviewQueue = request.app.state.review
    return {"model_version": predictor.version, "items": queue.queue(store, predictor, limit)}
