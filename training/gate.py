"""The promotion gate: a candidate replaces the active model only if it is not worse on the same held-out data.

Both models are scored on the same items; the candidate passes a set when its
macro F1 and its kind accuracy are each at most a bound below the active
model's. The verdict keeps every label's F1 side by side, so that a refusal
says which labels fell.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Gate:
    """How far below the active model a candidate may score and still be promoted."""

    max_macro_f1_drop: float = 0.01
    max_kind_accuracy_drop: float = 0.01

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _change(active: float | None, candidate: float | None) -> float | None:
    return None if active is None or candidate is None else round(candidate - active, 4)


def per_label(active: dict[str, Any], candidate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each topic's F1 for both models on one set, with the change and the set's positives."""
    rows = {}
    old, new = active["topics"]["per_label"], candidate["topics"]["per_label"]
    for label in dict.fromkeys([*old, *new]):
        a = (old.get(label) or {}).get("f1")
        c = (new.get(label) or {}).get("f1")
        support = (new.get(label) or old.get(label) or {}).get("support")
        rows[label] = {"active": a, "candidate": c, "change": _change(a, c), "support": support}
    return rows


def judge(name: str, active: dict[str, Any], candidate: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """The verdict on one held-out set: the metrics side by side, whether the candidate passes, and why not.

    Parameters
    ----------
    name : str
        The set, as the reasons name it (``holdout``, ``new stored items``).
    active, candidate : dict
        :func:`training.evaluate_model` reports of the two models on the same items.
    gate : Gate
        The allowed drops.
    """
    labels = per_label(active, candidate)
    checks = []
    macro = (active["topics"]["macro_f1"], candidate["topics"]["macro_f1"], gate.max_macro_f1_drop, "macro F1")
    checks.append(macro)
    if "kind" in active and "kind" in candidate:
        checks.append(
            (active["kind"]["accuracy"], candidate["kind"]["accuracy"], gate.max_kind_accuracy_drop, "kind accuracy")
        )
    metrics: dict[str, Any] = {}
    reasons = []
    for old, new, allowed, what in checks:
        passed = new >= old - allowed - 1e-9
        metrics[what] = {"active": old, "candidate": new, "change": _change(old, new), "allowed_drop": allowed,
                         "passed": passed}
        if not passed:
            fell = [
                f"{label} {row['active']:.3f} -> {row['candidate']:.3f} ({row['change']:+.3f}, {row['support']} "
                "positives)"
                for label, row in labels.items()
                if row["change"] is not None and row["change"] < 0
            ]
            detail = f"; labels that fell: {', '.join(fell)}" if what == "macro F1" and fell else ""
            reasons.append(
                f"{name}: {what} {new:.3f} is {old - new:.3f} below the active model's {old:.3f} "
                f"(at most {allowed:.3f} allowed){detail}"
            )
    return {
        "set": name,
        "items": candidate["topics"]["items"],
        "passed": not reasons,
        "reasons": reasons,
        "metrics": metrics,
        "per_label": labels,
    }
