"""The FastAPI application: ``create_app`` and its lifespan.

``xinxi serve`` runs ``uvicorn service.app:create_app --factory``; tests call
``create_app(Settings(...))`` inside a ``TestClient`` so the lifespan runs.
Nothing is loaded at import.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from model import ModelRegistry
from service.active_model import ActiveModel
from service.api import batch, routers
from service.batcher import PredictionBatcher
from service.errors import StoreUnavailableError, install_error_handlers
from service.jobs import JobRunner, JobStore
from service.metrics import Metrics
from service.middleware import RequestMiddleware
from service.retraining import Retrainer, RetrainScheduler
from service.review import ReviewQueue
from service.security import data_dir_warning, install_security
from service.settings import Settings, get_settings
from service.store import open_store

log = logging.getLogger("xinxi.service")

STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """
政务信息智能分析服务：为县级信息科的信息条目标注主题（产业发展、招商引资、农村发展、热点难点、突发事件，
可多选或为无），判断 **动态类 / 综合类** 并给出 0-100 的质量分、关键词与修改建议。

Topic tags and a news-vs-analysis quality score for 政务信息 items.
Errors are JSON: `{"error": {"code", "message_zh", "message_en", "request_id"}}`;
every response carries `X-Request-ID`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model, the store and the batcher start in the lifespan."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_keys:
            # Otherwise the first sign is a 401 on PUT /v1/models/active or a batch upload.
            log.warning(
                "no API key is configured: every state-changing route (PUT /v1/models/active, /v1/batch, /v1/items,"
                " /v1/retrain) answers 401 until XINXI_API_KEYS is set"
            )
        unsafe = data_dir_warning(settings.data_dir)
        if unsafe:
            log.warning("%s", unsafe)
        store = open_store(settings)
        try:
            store.migrate()  # Alembic upgrade to head; an existing database is upgraded in place
        except StoreUnavailableError:
            # Logged by the store. Prediction works without it; writes answer 503 store_unavailable,
            # /readyz says so, and the next write migrates once the database answers again.
            pass
        active = ActiveModel(ModelRegistry(settings.data_dir), settings.model_poll_seconds, metrics)
        batcher = PredictionBatcher(active)
        jobs = JobStore(settings.data_dir / "jobs")
        job_runner = JobRunner(jobs, active.get, active.registry.active_path)
        app.state.store = store
        app.state.active_model = active
        app.state.batcher = batcher
        app.state.jobs = jobs
        app.state.job_runner = job_runner
        retrainer = Retrainer(settings, store, active.registry, install=active.install)
        app.state.retrainer = retrainer
        scheduler = RetrainScheduler(retrainer, settings.retrain_interval_hours)
        app.state.review = ReviewQueue(settings.review_candidates)
        active.start()
        batcher.start()
        job_runner.start()  # queues again the jobs a previous run left unfinished
        scheduler.start()  # off unless XINXI_RETRAIN_INTERVAL_HOURS; then one worker runs it
        try:
            yield
        finally:
            scheduler.stop()
            retrainer.stop()
            job_runner.stop()
            await batcher.stop()
            active.stop()
            store.close()

    app = FastAPI(
        title="xinxi 政务信息分析",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    install_security(app, settings)
    app.add_middleware(RequestMiddleware, metrics=metrics)  # outermost: every response gets its id
    for router in routers:
        app.include_router(router)
    app.include_router(batch.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def editor_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app
