"""GET /v1/taxonomy: the labels with their Chinese names and definitions."""

from __future__ import annotations

from fastapi import APIRouter

from model.labels import KINDS, TOPICS, describe
from service.dependencies import ActiveModelDep
from service.schemas import LabelOut, TaxonomyOut

router = APIRouter(prefix="/v1", tags=["taxonomy"])


@router.get("/taxonomy", response_model=TaxonomyOut, summary="标签体系 / labels")
def taxonomy(active: ActiveModelDep) -> TaxonomyOut:
    """Topics and kinds, with Chinese names and definitions (those of the loaded model when there is one)."""
    predictor = active.predictor
    topics = [describe(label) for label in predictor.topic_labels] if predictor is not None else list(TOPICS)
    kinds = list(KINDS) if predictor is None or predictor.has_kind else []
    return TaxonomyOut(
        topics=[LabelOut(label=t.label, name=t.name, definition=t.definition) for t in topics],
        kinds=[LabelOut(label=k.label, name=k.name, definition=k.definition) for k in kinds],
        multi_label=predictor is None or predictor.mode == "multilabel",
    )
