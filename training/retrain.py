"""Retraining on the corpus and the editors' stored items, behind the promotion gate.

What the candidate learns from
    The corpus (``datasets/seed`` and ``datasets/real`` by default) and every
    labelled stored item. An editor's labels win over the corpus's for the
    same text (:func:`model.text.content_hash`). No item whose text is in the
    fixed held-out set (``datasets/holdout``) is ever trained on.

What it is judged on
    The held-out set, and the stored items the active model never saw: those
    recorded or changed after the store watermark in the active model's
    manifest (``training_data.store.up_to_change``). To judge fairly on the
    latter, the *gate candidate* is trained without them (and without any
    corpus copy of their text). Only when it passes on both sets is the model
    to be promoted refitted on everything, the new items included, and it
    must in turn pass on the held-out set. When there are no new stored items
    the gate candidate is the model promoted. So a promoted model has seen
    every stored item up to the watermark it records, and the next retrain
    judges on what came after.

This module runs in a process of its own (:func:`run_retrain_job`), started
by the service: it reads a job specification and the exported stored items
from the job's folder, and writes there its progress, the candidate version
and its report. It never touches the store, the registry or ``ACTIVE``; the
service moves the candidate into the registry after the process ended well,
so killing this process at any point changes nothing that is served.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from model import ModelRegistry, Predictor, describe_error
from model.artifact import new_version_id
from model.labels import KIND_NAMES, TOPIC_NAMES
from model.text import content_hash
from training.data import Item, load_items, parse_kind, parse_topics
from training.errors import TrainingError
from training.evaluate import evaluate_model
from training.gate import Gate, judge
from training.trainer import data_fingerprint, fit_model

PAUSE_HOOK = "XINXI_TEST_RETRAIN_PAUSE_AT"
"""Test hook: the start of a stage name (``training``, ``training: cross-validation fold 2``,
``evaluating``, ``refitting``, ``saving``, ``saved``) at which the retrain process stops and waits to be
killed, after writing ``paused`` in its job folder."""
STORE_SOURCE = "store"

Stage = Callable[[str, float], None]


def _silent(stage: str, share: float) -> None:
    return None


def stored_items(records: Sequence[Mapping[str, Any]]) -> tuple[list[Item], list[dict[str, Any]]]:
    """Stored items as training items, and those that cannot be trained on, each with the reason.

    Each record carries ``id, content_hash, title, text, topics, kind, change_id``
    (:meth:`service.store.Store.training_items`); topics and kind may be
    English or Chinese names.
    """
    items, rejected = [], []
    for record in records:
        try:
            topics = parse_topics(record.get("topics"))
            unknown = [t for t in topics if t not in TOPIC_NAMES]
            if unknown:
                raise ValueError(f"unknown topics {', '.join(unknown)}")
            kind = parse_kind(record.get("kind"))
            if kind not in KIND_NAMES:
                raise ValueError("no kind (news or analysis)")
            text = str(record.get("text") or "")
            if not text.strip():
                raise ValueError("empty text")
        except (ValueError, TypeError) as exc:
            rejected.append({"id": record.get("id"), "reason": str(exc)})
            continue
        title = str(record.get("title") or "")
        items.append(
            Item(
                id=f"store-{record.get('id')}", title=title, text=text, topics=topics, kind=kind,
                unit=record.get("unit"), source=STORE_SOURCE,
                extra={"content_hash": record.get("content_hash") or content_hash(title, text),
                       "change_id": int(record.get("change_id") or 0),
                       "recorded_at": str(record.get("recorded_at") or "")},
            )
        )
    return items, rejected


def item_hash(item: Item) -> str:
    return str(item.extra.get("content_hash") or content_hash(item.title, item.text))


def merge(corpus: Sequence[Item], stored: Sequence[Item], exclude: set[str]) -> tuple[list[Item], int]:
    """The corpus with stored items' labels winning for the same text, less every text in ``exclude``.

    Returns the training items and how many corpus items a stored item replaced.
    Stored items keep their own source only where the corpus is already split
    by source (leave-one-source-out thresholds); otherwise they join the corpus's.
    """
    stored_hashes = {item_hash(item) for item in stored}
    kept = [item for item in corpus if item_hash(item) not in exclude and item_hash(item) not in stored_hashes]
    replaced = sum(1 for item in corpus if item_hash(item) in stored_hashes and item_hash(item) not in exclude)
    sources = {item.source for item in kept}
    joining = [item for item in stored if item_hash(item) not in exclude]
    if len(sources) < 2:
        only = next(iter(sources), STORE_SOURCE)
        joining = [Item(**{**item.__dict__, "source": only}) for item in joining]
    return kept + joining, replaced


def retrain(
    corpus: Sequence[Item],
    records: Sequence[Mapping[str, Any]],
    holdout: Sequence[Item],
    *,
    out: Path,
    active_dir: Path | None,
    watermark: int,
    gate: Gate | None = None,
    force: bool = False,
    fit_options: Mapping[str, Any] | None = None,
    stage: Stage = _silent,
    corpus_info: Mapping[str, Any] | None = None,
    up_to_change: int | None = None,
) -> dict[str, Any]:
    """Train a candidate, judge it against the active model, and save it into ``out`` if it is to be promoted.

    Parameters
    ----------
    corpus, holdout : sequence of Item
        The labelled corpus and the fixed held-out set (may be empty).
    records : sequence of mapping
        The labelled stored items (see :func:`stored_items`).
    out : Path
        A registry root of the job's own (``out/models/<version>``); the candidate is saved there.
    active_dir : Path or None
        The active version; None when there is none (the candidate is then promoted).
    watermark : int
        The store change id up to which the active model saw stored items.
    gate : Gate, optional
        The allowed drops (default 0.01 each).
    force : bool
        Promote (and save) even if the gate refuses.
    fit_options : mapping, optional
        Passed to :func:`training.fit_model` (``seed``, ``folds`` ...).
    stage : callable
        ``stage(name, share_done)``, called as the work moves on.
    corpus_info : mapping, optional
        What identifies the corpus (files, SHA-256), recorded in the manifest.
    up_to_change : int, optional
        The store's last change id when ``records`` were read (the new model's
        watermark); by default the highest change id among the records.

    Returns
    -------
    dict
        The report: ``promote``, ``reasons``, the verdict per set and label, the data used,
        and ``version`` / ``candidate_dir`` when a version was saved.
    """
    options = {"seed": 0, **(fit_options or {})}
    gate = gate or Gate()
    stage("loading", 0.02)
    stored, rejected = stored_items(records)
    holdout_hashes = {item_hash(item) for item in holdout}
    usable = [item for item in stored if item_hash(item) not in holdout_hashes]
    unseen = [item for item in usable if int(item.extra["change_id"]) > watermark]
    seen = [item for item in usable if int(item.extra["change_id"]) <= watermark]
    unseen_hashes = {item_hash(item) for item in unseen}
    last_change = max([int(item.extra["change_id"]) for item in stored] + [watermark, up_to_change or 0])
    gate_items, _ = merge(corpus, seen, holdout_hashes | unseen_hashes)
    final_items, replaced = merge(corpus, usable, holdout_hashes)

    active: Predictor | None = None
    active_error = None
    if active_dir is not None:
        try:
            active = Predictor.load(active_dir)
        except Exception as exc:  # noqa: BLE001 - a damaged active model cannot be compared with
            active_error = describe_error(exc)
    registry = ModelRegistry(out)
    two_fits = bool(unseen)
    report: dict[str, Any] = {
        "predecessor": None if active is None else active.version,
        "gate": gate.as_dict(),
        "force": force,
        "data": {
            "corpus": dict(corpus_info or {}),
            "corpus_items": len(corpus),
            "holdout_items": len(holdout),
            "stored_items": len(stored),
            "stored_rejected": rejected,
            "stored_in_holdout": len(stored) - len(usable),
            "corpus_items_replaced_by_stored": replaced,
            "new_stored_items": len(unseen),
            "watermark_of_active": watermark,
            "up_to_change": last_change,
            "gate_training_items": len(gate_items),
            "training_items": len(final_items),
        },
        "sets": [],
    }

    stage("training", 0.05)
    span = 0.45 if two_fits else 0.8
    fitted = _fit(gate_items, options, stage, 0.05, span, "training")
    stage("evaluating", 0.05 + span)
    candidate = Predictor(*fitted)
    reasons: list[str] = []
    if active is None:
        reason = "no active model to compare with" if active_error is None else (
            f"the active model cannot be loaded ({active_error})")
        report["sets"].append({"set": "holdout", "passed": None, "reasons": [reason],
                               "candidate": _evaluate(candidate, holdout)})
        passed = active_error is None
        if not passed:
            reasons.append(reason)
    else:
        for name, items in (("holdout", holdout), ("new stored items", unseen)):
            if not items:
                report["sets"].append({"set": name, "items": 0, "passed": None, "reasons": []})
                continue
            verdict = judge(name, evaluate_model(active, items), evaluate_model(candidate, items), gate)
            report["sets"].append(verdict)
            reasons.extend(verdict["reasons"])
        passed = not reasons
    if two_fits and (passed or force):
        stage("refitting", 0.55)
        fitted = _fit(final_items, options, stage, 0.55, 0.35, "refitting")
        if active is not None and holdout:
            stage("evaluating", 0.92)
            verdict = judge("holdout, final model (new stored items included)",
                            evaluate_model(active, holdout), evaluate_model(Predictor(*fitted), holdout), gate)
            report["sets"].append(verdict)
            reasons.extend(verdict["reasons"])
            passed = passed and verdict["passed"]
    promote = passed or force
    report.update(promote=promote, passed=passed, reasons=reasons)
    if not promote:
        stage("decided", 1.0)
        return report

    stage("saving", 0.95)
    bundle, manifest = fitted
    version = new_version_id()
    recorded = [str(item.extra.get("recorded_at") or "") for item in stored]
    manifest["version"] = version
    manifest["training_data"].update(
        source="retrain: corpus + stored items",
        corpus=dict(corpus_info or {}),
        store={"up_to_change": last_change, "up_to_time": max([r for r in recorded if r], default=None),
               "items": len(usable), "replaced_corpus_items": replaced},
    )
    manifest["evaluation"] = {
        "against": report["predecessor"], "passed": passed, "forced": bool(force and not passed),
        "reasons": reasons, "gate": report["gate"], "sets": report["sets"],
    }
    directory = registry.save(bundle, manifest, version)
    report.update(version=version, candidate_dir=str(directory))
    stage("saved", 1.0)
    return report


def _fit(
    items: list[Item], options: Mapping[str, Any], stage: Stage, start: float, span: float, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit a model on ``items``, reporting progress as a share of the whole job."""
    if not items:
        raise TrainingError("nothing to train on: the corpus and the store hold no labelled items")

    def progress(step: str, done: int, total: int) -> None:
        stage(f"{name}: {step}", start + span * (done / total if total else 0))

    return fit_model(items, progress=progress, **options)


def _evaluate(predictor: Predictor, items: Sequence[Item]) -> dict[str, Any] | None:
    return evaluate_model(predictor, items) if items else None


def corpus_fingerprint(items: Sequence[Item], paths: Sequence[Path]) -> dict[str, Any]:
    """What identifies the corpus a model saw: its files and the SHA-256 of its items."""
    return {"paths": [str(p) for p in paths], **data_fingerprint(items)}


def write_json(path: Path, value: Any) -> None:
    """Write JSON whole or not at all (temporary file, fsync, rename)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(value, stream, ensure_ascii=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run_retrain_job(spec_path: str) -> None:
    """The retrain process: read ``spec.json`` of a job folder, retrain, write ``report.json`` there.

    The specification names ``data`` (corpus paths), ``holdout``, ``stored``
    (a JSONL file of stored items), ``active_dir``, ``watermark``, ``gate``,
    ``force``, ``fit_options`` and ``parent_pid``. Progress goes to
    ``progress.json``; a failure to ``report.json`` as ``{"error": ...}``. The
    process ends itself if the process that started it is gone.
    """
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    folder = Path(spec_path).parent
    parent = spec.get("parent_pid")
    pause_at = os.environ.get(PAUSE_HOOK)

    def stage(name: str, share: float) -> None:
        if parent and os.getppid() != parent:
            os._exit(3)  # orphaned: nobody would commit the result
        write_json(folder / "progress.json", {"stage": name, "progress": round(min(max(share, 0.0), 1.0), 4)})
        if pause_at and name.startswith(pause_at):
            (folder / "paused").write_text(name, encoding="utf-8")
            while True:
                time.sleep(1)

    try:
        paths = [Path(p) for p in spec["data"]]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise TrainingError(f"the retraining corpus is missing: {', '.join(missing)}")
        corpus, _ = load_items(paths[0] if len(paths) == 1 else paths, require_labels=True)
        holdout: list[Item] = []
        if spec.get("holdout") and Path(spec["holdout"]).exists():
            holdout, _ = load_items(Path(spec["holdout"]), require_labels=True)
        records = [json.loads(line) for line in Path(spec["stored"]).read_text(encoding="utf-8").splitlines() if line]
        report = retrain(
            corpus, records, holdout, out=folder / "staging",
            active_dir=Path(spec["active_dir"]) if spec.get("active_dir") else None,
            watermark=int(spec.get("watermark") or 0), gate=Gate(**spec.get("gate", {})),
            force=bool(spec.get("force")), fit_options=spec.get("fit_options"), stage=stage,
            corpus_info=corpus_fingerprint(corpus, paths), up_to_change=spec.get("store_last_change"),
        )
    except Exception as exc:  # noqa: BLE001 - reported to the job, whatever it is
        write_json(folder / "report.json", {"error": describe_error(exc)})
        raise SystemExit(1) from exc
    write_json(folder / "report.json", report)


def diff_models(
    first: Predictor, second: Predictor, holdout: Sequence[Item], records: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Two versions side by side: per-label metrics on the held-out set, and the stored items whose tags change.

    Returns
    -------
    dict
        ``holdout``: :func:`training.gate.judge` of ``second`` against ``first``
        (``active`` is ``first``); ``stored``: how many stored items get other
        topics or another kind, and per label how many gain or lose it.
    """
    report: dict[str, Any] = {"first": first.version, "second": second.version, "holdout": None}
    if holdout:
        report["holdout"] = judge("holdout", evaluate_model(first, holdout), evaluate_model(second, holdout), Gate())
    inputs = [{"id": str(r.get("id")), "title": r.get("title") or "", "text": str(r.get("text") or "")}
              for r in records if str(r.get("text") or "").strip()]
    changed, kinds, gained, lost = 0, 0, dict.fromkeys(first.topic_labels, 0), dict.fromkeys(first.topic_labels, 0)
    if inputs:
        for a, b in zip(first.predict_batched(inputs), second.predict_batched(inputs), strict=True):
            tags_a = {t.label for t in a.topics if t.selected}
            tags_b = {t.label for t in b.topics if t.selected}
            kind_a, kind_b = (a.kind.label if a.kind else None), (b.kind.label if b.kind else None)
            if tags_a != tags_b or kind_a != kind_b:
                changed += 1
            kinds += kind_a != kind_b
            for label in tags_b - tags_a:
                gained[label] = gained.get(label, 0) + 1
            for label in tags_a - tags_b:
                lost[label] = lost.get(label, 0) + 1
    report["stored"] = {"items": len(inputs), "changed": changed, "kind_changed": kinds,
                        "gained": gained, "lost": lost}
    return report
