"""Settings of the service and the command line, from ``XINXI_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "xinxi"


class Settings(BaseSettings):
    """Every setting, documented in the README; read once per process by :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="XINXI_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="model versions, the SQLite file, job files")
    # A secret: a URL may hold a password, and model_dump() or a log of the settings must not show it.
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; SQLite in data_dir when unset (may hold a password)"
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list, description="comma-separated API keys")
    predict_requires_key: bool = Field(default=False, description="require an API key for prediction too")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=2_000_000, ge=1024, description="largest accepted request body")
    max_upload_bytes: int = Field(
        default=200_000_000, ge=1024, description="largest file accepted by POST /v1/batch (batch jobs)"
    )
    max_text_chars: int = Field(default=100_000, ge=100, description="longest accepted text of one item")
    max_items: int = Field(default=100, ge=1, le=10_000, description="most items in one predict request")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed origins; empty is off"
    )
    model_poll_seconds: float = Field(
        default=5.0, ge=0.0, description="how often the service looks for a new active model; 0 is never"
    )
    retrain_data: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="comma-separated corpus files or directories; empty is datasets/seed, real"
    )
    retrain_holdout: Path | None = Field(
        default=None, description="the fixed held-out set of the promotion gate; unset is datasets/holdout"
    )
    retrain_max_macro_f1_drop: float = Field(
        default=0.01, ge=0.0, le=1.0, description="how far below the active model's macro F1 a candidate may be"
    )
    retrain_max_kind_accuracy_drop: float = Field(
        default=0.01, ge=0.0, le=1.0, description="how far below the active model's kind accuracy a candidate may be"
    )
    retrain_folds: int = Field(default=5, ge=2, le=20, description="cross-validation folds of a retrain")
    retrain_interval_hours: float = Field(
        default=0.0, ge=0.0, description="retrain every so many hours (one worker does it); 0 is never"
    )
    model_keep: int = Field(default=10, ge=2, description="model versions kept; the active and previous always")
    keep_predictions: int = Field(
        default=5000, ge=0, description="recently scored items (editor page) kept for the review queue"
    )
    store_busy_seconds: float = Field(
        default=30.0, gt=0, description="how long a SQLite writer waits for another one before giving up"
    )
    review_candidates: int = Field(
        default=1000, ge=10, le=100_000, description="newest unlabelled items and scored items the review queue ranks"
    )
    log_level: str = "info"
    access_log: bool = Field(default=True, description="one uvicorn log line per request")

    @field_validator("api_keys", "cors_origins", "retrain_data", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'xinxi.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings()
