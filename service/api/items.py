"""Recorded items: record (采用), list, read with history, correct (更正)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from service.dependencies import ActiveModelDep, StoreDep
from service.errors import NotFoundError, ServiceError
from service.schemas import (
    CorrectionIn,
    CorrectionOut,
    ItemDetailOut,
    ItemPageOut,
    RecordIn,
    RecordResponse,
    error_responses,
)
from service.security import KeyFirstRoute, require_api_key
from service.store import LEVELS, RejectedItem

router = APIRouter(prefix="/v1", tags=["items"], route_class=KeyFirstRoute, dependencies=[Depends(require_api_key)])

MAX_RECORDS = 1000
SOURCE_HEADER = "x-xinxi-source"
"""``page`` from the editor page: its items are recorded with origin ``page``, its scorings kept for review."""

KEYED = {
    401: "unauthorized: API key missing or wrong",
    503: "store_unavailable: the database does not answer; nothing was stored",
}
WRITE_ERRORS = error_responses({
    400: "malformed_json: the body is not JSON",
    **KEYED,
    413: "body_too_large over XINXI_MAX_BODY_BYTES",
    422: "validation_error: the body is not an item or a list of at most 1000 items",
})


class InvalidCorrectionError(ServiceError):
    status = 422
    code = "invalid_correction"


def _origin(request: Request) -> str:
    return "page" if request.headers.get(SOURCE_HEADER, "").strip().lower() == "page" else "api"


@router.post(
    "/items", response_model=RecordResponse, responses=WRITE_ERRORS, summary="记录条目（采用）/ record items"
)
def record_items(
    request: Request,
    store: StoreDep,
    body: Annotated[RecordIn | Annotated[list[RecordIn], Body(max_length=MAX_RECORDS)], Body()],
) -> Any:
    """Add or update one item or a list; the same text again updates its item. Per item: added, updated,
    unchanged or rejected with the reason."""
    records = body if isinstance(body, list) else [body]
    payload = [record.model_dump(exclude={"recorded_by"}) for record in records]
    origin = _origin(request)
    results: list[dict[str, Any]] = []
    # One transaction per recorded_by (almost always one); results keep the request's order.
    by_who: dict[str | None, list[int]] = {}
    for index, record in enumerate(records):
        by_who.setdefault(record.recorded_by, []).append(index)
    ordered: dict[int, dict[str, Any]] = {}
    for who, indexes in by_who.items():
        answers = store.record_items([payload[i] for i in indexes], origin=origin, recorded_by=who)
        ordered.update(zip(indexes, answers, strict=True))
    results = [{"index": i, **ordered[i]} for i in range(len(records))]
    counts = {status: sum(r["status"] == status for r in results) for status in
              ("added", "updated", "unchanged", "rejected")}
    return {**counts, "results": results}


@router.get(
    "/items", response_model=ItemPageOut, responses=error_responses({**KEYED, 422: "validation_error"}),
    summary="列出条目 / list recorded items",
)
def list_items(
    store: StoreDep,
    adopted: Annotated[bool | None, Query(description="true: adopted at county/city/province level")] = None,
    level: Annotated[str | None, Query(description=", ".join(LEVELS))] = None,
    topic: Annotated[str | None, Query(max_length=50)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    unit: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[dt.datetime | None, Query(description="changed at or after (ISO 8601)")] = None,
    labelled: Annotated[bool | None, Query(description="true: topics and kind set")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Recorded items, most recently changed first, with the number matching the filters."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    if since is not None:
        since = since.astimezone(dt.UTC)
    rows, total = store.list_items(
        adopted=adopted, level=level, topic=topic, kind=kind, unit=unit, since=since, labelled=labelled,
        limit=limit, offset=offset,
    )
    return {"total": total, "limit": limit, "offset": offset, "items": rows}


@router.get(
    "/items/{item_id}", response_model=ItemDetailOut,
    responses=error_responses({**KEYED, 404: "not_found: no item with this id"}),
    summary="条目详情与历史 / one item with its history",
)
def read_item(item_id: int, store: StoreDep) -> Any:
    """The item, every change made to it, and its corrections."""
    item = store.get_item(item_id)
    if item is None:
        raise NotFoundError(f"no item {item_id}", f"没有编号为 {item_id} 的条目")
    return {**item, "history": store.history(item_id), "corrections": store.corrections_of(item_id)}


@router.post(
    "/items/{item_id}/corrections", response_model=CorrectionOut,
    responses=error_responses({
        **KEYED, 400: "malformed_json", 404: "not_found: no item with this id",
        422: "invalid_correction: unknown topic or kind; validation_error",
    }),
    summary="更正标签 / correct an item's labels",
)
def correct_item(item_id: int, body: CorrectionIn, request: Request, store: StoreDep, active: ActiveModelDep) -> Any:
    """Set the item's topics and kind, stored with the prediction they correct (the active model's if not given)."""
    prediction: dict[str, Any] = {
        "predicted_topics": body.predicted_topics, "predicted_kind": body.predicted_kind,
        "probabilities": body.probabilities, "model_version": body.model_version,
    }
    if body.model_version is None and active.predictor is not None:
        item = store.get_item(item_id)
        if item is not None:
            scored = active.predictor.predict([{"title": item["title"], "text": item["text"]}])[0]
            prediction = {
                "predicted_topics": [t.label for t in scored.topics if t.selected],
                "predicted_kind": None if scored.kind is None else scored.kind.label,
                "probabilities": {t.label: t.probability for t in scored.topics}
                | ({} if scored.kind is None else {"analysis": scored.kind.analysis_probability}),
                "model_version": scored.model_version,
            }
    try:
        return store.correct(
            item_id, topics=body.topics, kind=body.kind, corrected_by=body.corrected_by, origin=_origin(request),
            **prediction,
        )
    except RejectedItem as exc:
        raise InvalidCorrectionError(str(exc), f"更正无效：{exc}") from exc
    except KeyError:
        raise NotFoundError(f"no item {item_id}", f"没有编号为 {item_id} 的条目") from None
