"""Batch jobs: upload a file, follow its progress, download the scored file and its report."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from service.batch import FORMATS
from service.batch.formats import EXTENSIONS, check_contents, choose_columns, open_reader
from service.errors import NotFoundError, ServiceError
from service.jobs import JobRunner, JobStore
from service.schemas import error_responses
from service.security import KeyFirstRoute, require_api_key

router = APIRouter(
    prefix="/v1/batch",
    tags=["batch"],
    dependencies=[Depends(require_api_key)],
    route_class=KeyFirstRoute,
    responses=error_responses({401: "unauthorized: API key missing or wrong, or none configured"}),
)
COPY_BLOCK = 1 << 20


class InvalidFileError(ServiceError):
    status = 422
    code = "invalid_file"
    message_zh = "文件无法读取或格式不符"


class JobNotDoneError(ServiceError):
    status = 409
    code = "job_not_done"
    message_zh = "任务尚未完成，结果还不能下载"


class JobOut(BaseModel):
    id: str
    state: str = Field(description="uploading, queued, running, done or failed")
    filename: str = Field(description="the uploaded file's name (shown, never used as a path)")
    created_at: str
    updated_at: str
    input_format: str
    output_format: str
    rows: int = Field(description="rows written so far")
    total_rows: int | None = Field(description="rows in the file, when the format tells before the end")
    progress: float = Field(ge=0, le=1)
    model_version: str | None
    summary: dict[str, Any] | None = Field(description="rows, per topic, per kind, errors, time (when done)")
    error: str | None
    result_url: str | None
    report_url: str | None


def get_jobs(request: Request) -> JobStore:
    store: JobStore = request.app.state.jobs
    return store


def get_runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.job_runner
    return runner


JobsDep = Annotated[JobStore, Depends(get_jobs)]


def _out(job: dict[str, Any]) -> JobOut:
    done = job["state"] == "done"
    return JobOut(
        **{k: v for k, v in job.items() if k in JobOut.model_fields},
        result_url=f"/v1/batch/{job['id']}/result" if done else None,
        report_url=f"/v1/batch/{job['id']}/report" if done else None,
    )


def _job(store: JobStore, job_id: str) -> dict[str, Any]:
    job = store.load(job_id)
    if job is None:
        raise NotFoundError(f"no batch job {job_id[:64]!r}", "找不到该批量任务")
    return job


def _format(name: str, given: str | None, what: str) -> str:
    if given:
        chosen = given.lower().lstrip(".")
        if chosen not in FORMATS:
            raise InvalidFileError(f"unknown {what} format {given!r}; choose one of {', '.join(FORMATS)}")
        return chosen
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in EXTENSIONS:
        raise InvalidFileError(
            f"the file name ends in {suffix or '(nothing)'}; upload {', '.join(sorted(set(EXTENSIONS)))}",
            "只支持 CSV、TSV、XLSX、JSONL、Parquet 文件",
        )
    return EXTENSIONS[suffix]


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="上传文件批量评分 / start a batch job",
    responses=error_responses(
        {
            400: "bad_request: the multipart body cannot be parsed",
            413: "body_too_large: upload over XINXI_MAX_UPLOAD_BYTES",
            422: "invalid_file or validation_error: wrong type, contents, columns, or no file",
        }
    ),
)
def create_job(
    store: JobsDep,
    runner: Annotated[JobRunner, Depends(get_runner)],
    file: Annotated[UploadFile, File(description="CSV/TSV, XLSX, JSONL or Parquet with a header row")],
    output_format: Annotated[str | None, Form(description="format of the result (default: the upload's)")] = None,
    text_col: Annotated[str | None, Form(max_length=200)] = None,
    title_col: Annotated[str | None, Form(max_length=200)] = None,
    id_col: Annotated[str | None, Form(max_length=200)] = None,
    unit_col: Annotated[str | None, Form(max_length=200)] = None,
    date_col: Annotated[str | None, Form(max_length=200)] = None,
    sheet: Annotated[str | None, Form(max_length=200)] = None,
    encoding: Annotated[str | None, Form(max_length=40)] = None,
) -> Any:
    """Store the upload under the data directory, check it, and queue it; returns the job (202)."""
    from training import DataFileError

    name = file.filename or ""
    input_format = _format(name, None, "input")
    output = _format(name, output_format, "output")
    options = {"text_col": text_col, "title_col": title_col, "id_col": id_col, "unit_col": unit_col,
               "date_col": date_col, "sheet": sheet, "encoding": encoding}
    job = store.create(name, input_format, output, options)
    path = store.input_path(job)
    try:
        with path.open("wb") as target:
            while block := file.file.read(COPY_BLOCK):
                target.write(block)
            target.flush()
            os.fsync(target.fileno())
        # Refuse now what would fail anyway: wrong contents, no such column, several sheets ...
        check_contents(path, input_format)
        with open_reader(path, input_format, encoding=encoding, sheet=sheet) as reader:
            choose_columns(Path(job["filename"]), reader.columns, {
                "text": text_col, "title": title_col, "id": id_col, "unit": unit_col, "date": date_col,
            })
    except DataFileError as exc:
        store.delete(job["id"])
        message = str(exc).replace(str(path), job["filename"])
        raise InvalidFileError(message, f"文件无法处理：{message}") from None
    except BaseException:
        store.delete(job["id"])
        raise
    runner.submit(job["id"])
    return _out(store.load(job["id"]) or job)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="任务状态与进度 / job state and progress",
    responses=error_responses({404: "not_found: no such job"}),
)
def read_job(job_id: str, store: JobsDep) -> Any:
    """State, rows done, progress 0-1, and when done the summary and the result and report links."""
    return _out(_job(store, job_id))


FINISHED_JOB_ERRORS = error_responses({404: "not_found: no such job", 409: "job_not_done: the job is not done"})
"""What the downloads of a job answer besides the file."""


def _finished(store: JobStore, job_id: str) -> dict[str, Any]:
    job = _job(store, job_id)
    if job["state"] != "done":
        raise JobNotDoneError(f"job {job_id} is {job['state']}; the result is ready when it is done")
    return job


@router.get(
    "/{job_id}/result",
    summary="下载评分结果 / download the scored file",
    response_class=FileResponse,
    responses=FINISHED_JOB_ERRORS,
)
def download_result(job_id: str, store: JobsDep) -> FileResponse:
    """The scored file: every uploaded row and column, with xinxi's columns added."""
    job = _finished(store, job_id)
    stem = PurePosixPath(job["filename"]).stem or "upload"
    download = f"{stem}-xinxi.{job['output_format']}"
    ascii_name = download.encode("ascii", "replace").decode().replace("?", "_")
    return FileResponse(
        store.output_path(job),
        headers={"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download)}"},
    )


@router.get(
    "/{job_id}/report",
    summary="结果概览 / the HTML report",
    response_class=FileResponse,
    responses=FINISHED_JOB_ERRORS,
)
def read_report(job_id: str, store: JobsDep) -> FileResponse:
    """Items per topic and kind per unit and per month, the quality-score distribution, units mostly 动态类."""
    job = _finished(store, job_id)
    return FileResponse(store.report_path(job), media_type="text/html; charset=utf-8")
