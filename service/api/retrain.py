"""Retraining (keyed): start a job, follow it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.errors import NotFoundError
from service.retraining import Retrainer
from service.schemas import RetrainJobOut, RetrainRequest, error_responses
from service.security import KeyFirstRoute, caller_identity, require_api_key

router = APIRouter(
    tags=["retrain"],
    dependencies=[Depends(require_api_key)],
    route_class=KeyFirstRoute,
    responses=error_responses({401: "unauthorized: API key missing or wrong, or none configured"}),
)


def get_retrainer(request: Request) -> Retrainer:
    retrainer: Retrainer = request.app.state.retrainer
    return retrainer


RetrainerDep = Annotated[Retrainer, Depends(get_retrainer)]


@router.post(
    "/v1/retrain",
    status_code=202,
    response_model=RetrainJobOut,
    summary="重新训练（需密钥）/ retrain (API key)",
    responses=error_responses(
        {
            400: "malformed_json: the body is not JSON",
            409: "retrain_running: another retrain is running (one at a time, across workers)",
            413: "body_too_large: body over XINXI_MAX_BODY_BYTES",
            422: "reason_required: force without a reason; validation_error: wrong types",
        }
    ),
)
def start_retrain(request: Request, retrainer: RetrainerDep, body: RetrainRequest | None = None) -> RetrainJobOut:
    """Start a retrain on the corpus and the stored items in a separate process; follow it at /v1/jobs/{id}."""
    body = body or RetrainRequest()
    job = retrainer.start(trigger="api", who=caller_identity(request), reason=body.reason, force=body.force)
    return RetrainJobOut(**job)


@router.get("/v1/jobs", response_model=list[RetrainJobOut], summary="重新训练任务 / retrain jobs")
def list_jobs(retrainer: RetrainerDep) -> list[RetrainJobOut]:
    """Every retrain job, newest first."""
    retrainer.jobs.settle_interrupted()
    return [RetrainJobOut(**job) for job in retrainer.jobs.all()]


@router.get(
    "/v1/jobs/{job_id}",
    response_model=RetrainJobOut,
    summary="任务状态 / a job's state",
    responses=error_responses({404: "not_found: no such job"}),
)
def get_job(job_id: str, retrainer: RetrainerDep) -> RetrainJobOut:
    """State, stage and progress of a retrain job, and when it is done the gate's report."""
    job = retrainer.jobs.load(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id[:64]!r}", "找不到该任务")
    return RetrainJobOut(**job)
