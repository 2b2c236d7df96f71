"""Request and response models of the API, with their limits and Chinese examples."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from model.text import MAX_CHARS

EXAMPLE_ITEM: dict[str, Any] = {
    "id": "2024-0312",
    "title": "青溪县多措并举推动招商引资提质增效",
    "text": (
        "今年以来，青溪县坚持把招商引资作为经济工作的“一号工程”。一是强化产业链招商，围绕农产品加工、"
        "新型建材两条主导产业链，梳理缺链补链项目28个；二是创新以商招商，依托在外青溪商会举办推介会3场，"
        "签约项目12个、总投资36.5亿元；三是优化营商环境，推行项目审批“一窗受理”，平均审批时限压缩40%。"
        "目前仍存在项目落地慢、要素保障不足等问题，下一步将建立在谈项目台账，实行县级领导包联。"
    ),
}

EXAMPLE_RESULT: dict[str, Any] = {
    "id": "2024-0312",
    "topics": [
        {
            "label": "industry",
            "name": "产业发展",
            "probability": 0.41,
            "selected": False,
            "terms": ["产业链"],
        },
        {
            "label": "investment",
            "name": "招商引资",
            "probability": 0.97,
            "selected": True,
            "terms": ["招商", "签约", "以商招商"],
        },
        {"label": "rural", "name": "农村发展", "probability": 0.08, "selected": False, "terms": []},
        {"label": "hot_issue", "name": "热点难点", "probability": 0.02, "selected": False, "terms": []},
        {"label": "emergency", "name": "突发事件", "probability": 0.01, "selected": False, "terms": []},
    ],
    "kind": {
        "label": "analysis",
        "name": "综合类",
        "probability": 0.93,
        "analysis_probability": 0.93,
        "terms": ["一是", "存在", "下一步"],
    },
    "quality_score": 93,
    "grade": "综合类",
    "suggestions": [],
    "warnings": [],
    "confidence": "normal",
    "model_version": "20240601-101500-ab12",
}


class ItemIn(BaseModel):
    """One item to score. Other fields (unit, date...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE_ITEM]})

    # Strict: in lax mode pydantic reads true as 1 and 1.0 as 1, and the id came back as "1".
    id: Annotated[str, Field(max_length=200, strict=True)] | Annotated[int, Field(strict=True)] | None = Field(
        default=None, description="the caller's id, a string or an integer, echoed back as a string"
    )
    title: str | None = Field(default=None, description="标题", max_length=1000)
    text: str = Field(
        description=f"正文; longer than {MAX_CHARS:,} characters is truncated with a warning", min_length=1
    )


class PredictRequest(BaseModel):
    """One request: 1 to ``XINXI_MAX_ITEMS`` (default 100) items."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [EXAMPLE_ITEM]}]})

    items: list[ItemIn] = Field(min_length=1, max_length=10_000, description="items to score")


class TopicOut(BaseModel):
    label: str
    name: str = Field(description="中文名")
    probability: float = Field(ge=0, le=1)
    selected: bool = Field(description="predicted as a main subject of the item")
    terms: list[str] = Field(description="words of this text that pushed hardest towards the label")


class KindOut(BaseModel):
    label: str = Field(description="news (动态类) or analysis (综合类)")
    name: str
    probability: float = Field(ge=0, le=1, description="probability of the chosen kind")
    analysis_probability: float = Field(ge=0, le=1)
    terms: list[str]


class PredictionOut(BaseModel):
    """The result shape of `xinxi predict`."""

    id: str | None
    topics: list[TopicOut]
    kind: KindOut | None
    quality_score: int | None = Field(description="0-100, the probability of 综合类 in percent")
    grade: str | None = Field(description="动态类 or 综合类")
    suggestions: list[str]
    warnings: list[str]
    confidence: str = Field(description="'low' when the text has no Chinese")
    model_version: str | None


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model_version": "20240601-101500-ab12", "results": [EXAMPLE_RESULT]}]
        }
    )

    model_version: str
    results: list[PredictionOut]


class LabelOut(BaseModel):
    label: str
    name: str
    definition: str


class TaxonomyOut(BaseModel):
    topics: list[LabelOut] = Field(description="topics of the loaded model (ANNOTATION.md's by default)")
    kinds: list[LabelOut]
    multi_label: bool = Field(description="whether an item can have several topics (and none)")


class ModelOut(BaseModel):
    version: str
    created_at: str | None
    active: bool
    mode: str | None = None
    labels: dict[str, list[str]] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    segmenter: dict[str, Any] = Field(default_factory=dict)
    libraries: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = Field(
        default=None, description="a retrained version's verdict against its predecessor, per held-out set and label"
    )


class ModelSummary(BaseModel):
    version: str
    created_at: str | None
    active: bool
    items: int | None = Field(description="training items")
    store_up_to_change: int | None = Field(default=None, description="stored items up to this change were used")
    passed_gate: bool | None = Field(default=None, description="retrained versions: whether it passed the gate")


class ReasonRequest(BaseModel):
    """Why a version is activated or rolled back to; kept in the audit log."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "回退：新模型把防汛信息标成了产业发展"}]})

    reason: str | None = Field(default=None, max_length=500)


class AuditEntryOut(BaseModel):
    at: str | None = Field(description="when the version became active (UTC); null: before the audit log began")
    version: str
    previous: str | None = Field(description="the version it replaced")
    action: str = Field(description="activate, rollback, retrain, force or train")
    who: str | None = Field(description="api-key:<fingerprint>, os-user:<name> or schedule")
    why: str | None


class RetrainRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{}, {"force": True, "reason": "新增县级采用信息，旧模型已过时"}]}
    )

    force: bool = Field(default=False, strict=True, description="promote even if the gate refuses (reason required)")
    reason: str | None = Field(default=None, max_length=500, description="why; recorded in the audit log")


class RetrainJobOut(BaseModel):
    id: str
    kind: str = Field(description="retrain")
    state: str = Field(description="queued, running, done or failed")
    trigger: str = Field(description="api, cli or schedule")
    who: str
    reason: str | None
    force: bool
    created_at: str
    updated_at: str
    finished_at: str | None
    stage: str | None = Field(description="what the retrain process is doing")
    progress: float = Field(ge=0, le=1)
    outcome: str | None = Field(description="promoted, forced, kept (the gate refused) or failed")
    version: str | None = Field(description="the new version, when one was saved")
    error: str | None
    report: dict[str, Any] | None = Field(
        description="when done: the gate's verdict per held-out set and label, the reasons, the data used"
    )


class ActivateRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": "20240601-101500-ab12"}]})

    version: str = Field(min_length=1, max_length=200)


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str = Field(description="ready")
    model_version: str | None
    model_state: str
    store: str
    worker: int | None = Field(default=None, description="process id of the worker that answered (--workers N)")


class DegradedOut(ReadyOut):
    """503 from ``/readyz``: an older model serves while ``ACTIVE`` names one that failed to load."""

    status: str = Field(description="degraded")
    reason: str = Field(description="which version failed to load and why, and which one serves")


class ErrorDetailOut(BaseModel):
    code: str = Field(description="stable; the README's Errors table lists every one")
    message_zh: str
    message_en: str
    request_id: str = Field(description="the X-Request-ID of the response; the server log has it too")
    details: list[dict[str, Any]] | None = Field(default=None, description="per field, for validation errors")


class ErrorOut(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "unauthorized",
                        "message_zh": "缺少或无效的 API 密钥（Authorization: Bearer ...）",
                        "message_en": "missing or invalid API key (Authorization: Bearer ...)",
                        "request_id": "3f2c9b0e5d6a4e7f8a9b0c1d2e3f4a5b",
                    }
                }
            ]
        }
    )

    error: ErrorDetailOut


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it gives, with the error body and when."""
    return {status: {"model": ErrorOut, "description": text} for status, text in descriptions.items()}


# -- The store: recorded items, corrections, the review queue ----------------------------------

EXAMPLE_RECORD: dict[str, Any] = {
    **EXAMPLE_ITEM,
    "topics": ["investment"],
    "kind": "analysis",
    "adopted_level": "city",
    "unit": "青溪县商务局",
    "date": "2024-03-12",
}


class RecordIn(BaseModel):
    """An item to record. Omitted fields keep what the stored item had; topics/kind null mean "not labelled"."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_RECORD]})

    id: Annotated[str, Field(max_length=200, strict=True)] | Annotated[int, Field(strict=True)] | None = Field(
        default=None, description="the caller's own id, kept with the item"
    )
    title: str | None = Field(default=None, max_length=2000, description="标题")
    text: str = Field(max_length=200_000, description="正文 (an empty text is rejected, with the reason)")
    topics: list[Annotated[str, Field(max_length=50)]] | None = Field(
        default=None, max_length=20, description="topic names or Chinese names; [] for none, null for not labelled"
    )
    kind: str | None = Field(default=None, max_length=20, description="news/动态类 or analysis/综合类")
    adopted_level: str | None = Field(
        default=None, max_length=200,
        description="none, county, city, province (无/县级/市级/省级), or a text naming one (kept as written)",
    )
    unit: str | None = Field(default=None, max_length=200, description="报送单位")
    date: str | None = Field(default=None, max_length=40, description="date of the item, 2024-03-12")
    recorded_by: str | None = Field(default=None, max_length=200, description="who records it")


class RecordResultOut(BaseModel):
    index: int = Field(description="position in the request, from 0")
    status: str = Field(description="added, updated, unchanged or rejected")
    id: int | None = Field(description="the stored item's id")
    change_id: int | None = Field(description="the item's latest change")
    reason: str | None = Field(description="why it was rejected")


class RecordResponse(BaseModel):
    added: int
    updated: int
    unchanged: int
    rejected: int
    results: list[RecordResultOut]


class StoredItemOut(BaseModel):
    id: int
    content_hash: str
    external_id: str | None
    title: str | None
    text: str
    topics: list[str] | None = Field(description="null: not labelled")
    kind: str | None = Field(description="null: not labelled")
    adopted_level: str | None = Field(description="none, county, city, province; null: not stated")
    adopted_level_text: str | None = Field(description="the level as written, when it was free text")
    unit: str | None
    date: Any = Field(description="YYYY-MM-DD")
    recorded_by: str | None
    recorded_at: Any
    updated_at: Any
    origin: str = Field(description="page, api or import")
    last_change_id: int | None


class ItemPageOut(BaseModel):
    total: int = Field(description="items matching the filters")
    limit: int
    offset: int
    items: list[StoredItemOut]


class ChangeOut(BaseModel):
    id: int
    action: str = Field(description="insert, update, correction or migrate")
    before: dict[str, Any] | None
    after: dict[str, Any]
    changed_by: str | None
    changed_at: Any
    origin: str


class CorrectionOut(BaseModel):
    id: int
    item_id: int
    change_id: int
    topics: list[str]
    kind: str
    predicted_topics: list[str] | None
    predicted_kind: str | None
    probabilities: dict[str, float] | None
    model_version: str | None
    corrected_by: str | None
    corrected_at: Any


class ItemDetailOut(StoredItemOut):
    history: list[ChangeOut]
    corrections: list[CorrectionOut]


class CorrectionIn(BaseModel):
    """An editor's labels for a stored item, and (optionally) the prediction they correct.

    Without ``model_version``, the active model's prediction for the item is stored with the correction.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"topics": ["investment", "industry"], "kind": "analysis"}]}
    )

    topics: list[Annotated[str, Field(max_length=50)]] = Field(max_length=20, description="[] for none")
    kind: str = Field(max_length=20)
    predicted_topics: list[Annotated[str, Field(max_length=50)]] | None = Field(default=None, max_length=20)
    predicted_kind: str | None = Field(default=None, max_length=20)
    probabilities: dict[Annotated[str, Field(max_length=50)], float] | None = Field(
        default=None, max_length=20, description="topic label (and 'analysis') to probability, as shown"
    )
    model_version: str | None = Field(default=None, max_length=200)
    corrected_by: str | None = Field(default=None, max_length=200)


class ReviewTopicOut(BaseModel):
    label: str
    name: str
    probability: float
    selected: bool


class ReviewKindOut(BaseModel):
    label: str
    name: str
    analysis_probability: float


class ReviewEntryOut(BaseModel):
    source: str = Field(description="item (recorded, not labelled) or prediction (scored on the page)")
    item_id: int | None
    prediction_id: int | None
    content_hash: str
    title: str
    text: str
    unit: str | None
    adopted_level: str | None
    at: Any = Field(description="when it was recorded or scored")
    priority: float = Field(description="model.uncertainty.review_priority: higher is less certain, (0, 1]")
    topics: list[ReviewTopicOut]
    kind: ReviewKindOut | None
    model_version: str


class ReviewOut(BaseModel):
    model_version: str
    items: list[ReviewEntryOut]
