"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.dependencies import ActiveModelDep, MetricsDep, StoreDep
from service.errors import NotReadyError, without_paths
from service.schemas import DegradedOut, HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="存活检查 / alive")
async def healthz() -> HealthOut:
    """The process answers."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="就绪检查 / ready",
    responses={
        503: {
            "model": DegradedOut,
            "description": "degraded (this body), or not ready (the error body `not_ready`)",
        }
    },
)
def readyz(active: ActiveModelDep, store: StoreDep) -> Any:
    """A model is loaded, it is the one `ACTIVE` names, and the store answers."""
    predictor = active.predictor
    store_ok = store.ping()
    if predictor is None or not store_ok:
        problems = []
        if predictor is None:
            problems.append({"check": "model", "state": active.state})
        if not store_ok:
            problems.append({"check": "store", "state": "unreachable"})
        raise NotReadyError(
            "not ready: " + ", ".join(f"{p['check']} {p['state']}" for p in problems),
            "服务尚未就绪：" + "，".join("模型未加载" if p["check"] == "model" else "数据库不可达" for p in problems),
            details=problems,
        )
    reason = active.degraded_reason()
    if reason is not None:
        # Still serving, but not what was asked for: a balancer should prefer another worker.
        degraded = DegradedOut(
            status="degraded",
            model_version=predictor.version,
            model_state=active.state,
            store="ok",
            reason=without_paths(reason),
            worker=os.getpid(),
        )
        return JSONResponse(degraded.model_dump(), status_code=503)
    return ReadyOut(
        status="ready", model_version=predictor.version, model_state=active.state, store="ok", worker=os.getpid()
    )


@router.get("/metrics", summary="Prometheus 指标 / metrics", response_class=Response)
def metrics(metrics: MetricsDep) -> Response:
    """Requests, latencies and predictions per label, in the Prometheus text format."""
    return Response(metrics.render(), media_type=metrics.content_type)
