"""Rendering of evaluation and comparison reports: table rows for the terminal, Markdown for files."""

from __future__ import annotations

from typing import Any

from model.labels import describe
from training.dataset import TEST_GROUP
from training.diagnostics import NONE


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (one row per method), for the terminal and Markdown."""
    labels = report["data"]["labels"]
    kinds = report["data"]["kinds"] is not None
    header = ["method", *(f"F1 {label}" for label in labels), "macro F1", "micro F1"]
    if kinds:
        header += ["kind acc.", "kind AUC"]
    header += ["fit s/split", "items/s"]
    rows = []
    for entry in report["methods"]:
        if "skipped" in entry:
            rows.append([entry["name"], f"skipped: {entry['skipped']}"] + [""] * (len(header) - 2))
            continue
        row = [entry["name"], *(_number(entry["per_label"][label]["f1"]) for label in labels)]
        row += [_number(entry["macro_f1"]), _number(entry["micro_f1"])]
        if kinds:
            row += [_number(entry["kind_accuracy"]), _number(entry["kind_roc_auc"])]
        row += [_number(entry["fit_seconds"], 2), _number(entry["items_per_second"], 0)]
        rows.append(row)
    return header, rows


def split_title(report: dict[str, Any]) -> str:
    split = report["split"]
    data = report["data"]
    if split["strategy"] == "files":
        how = f"leave-one-file-out ({split['folds']} files)"
    elif split["strategy"] == "test":
        groups = data.get("groups") or {}
        trained, tested = groups.get("train", "?"), groups.get(TEST_GROUP, "?")
        how = f"trained on {trained} items, tested on the {tested} of a separate set"
    elif split["strategy"] == "sources":
        how = f"each of {split['folds']} sources held out in turn, trained on all the rest"
    else:
        how = f"{split['folds']}-fold cross-validation, seed {split['seed']}"
    return f"{data['items']} items of {data['source'] or 'the data'}, {data['mode']}, {how}"


def by_source_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the held-out-source table: one row per source and method, then the means.

    A label's F1 is shown with its positives in the held-out source, since an
    F1 over a handful of positives says little; macro F1* averages the labels
    with at least ten positives in that source (``training.compare.MIN_LABEL_POSITIVES``).
    """
    labels = report["data"]["labels"]
    header = ["held-out source", "items", "method", *labels, "macro F1*", "kind acc."]
    rows = []
    for source, entries in report["per_source"].items():
        for entry in entries:
            if "skipped" in entry:
                continue
            cells = [f"{_number(entry['per_label'][label]['f1'])} ({entry['per_label'][label]['support']})"
                     for label in labels]
            rows.append([source, str(report["data"]["sources"][source]), entry["name"], *cells,
                         _number(entry["macro_f1_present"]), _number(entry["kind_accuracy"])])
    for mean in report["mean_over_sources"]:
        rows.append([f"mean of {len(report['per_source'])} sources", "", mean["name"],
                     *(_number(mean["per_label"][label]) for label in labels),
                     _number(mean["macro_f1"]), _number(mean["kind_accuracy"])])
    return header, rows


def by_source_markdown(report: dict[str, Any]) -> str:
    """The held-out-source table as Markdown (label cells: F1 (positives in that source))."""
    header, rows = by_source_rows(report)
    lines = [f"**{split_title(report)}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i in (0, 2) else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Label cells: F1 (positives in that source). Macro F1*: over the labels with at least ten "
              "positives in that source; means: over sources, each counted once."]
    return "\n".join(lines) + "\n"


def comparison_table(report: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """Title, metric names and one column per method: the comparison shaped for a terminal.

    One row per metric and one column per method fits a terminal whatever the
    number of labels. Returns ``(title, header, rows)`` where ``header`` names
    the methods and each row starts with its metric.
    """
    header, rows = table_rows(report)
    methods = [row[0] for row in rows]
    metrics = [[metric, *(row[number] for row in rows)] for number, metric in enumerate(header[1:], 1)]
    return split_title(report), methods, metrics


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table with a one-line caption."""
    header, rows = table_rows(report)
    lines = [f"**{split_title(report)}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def evaluation_markdown(result: dict[str, Any]) -> str:
    """A Markdown document of :func:`evaluation`'s result: the tables, calibration and errors."""
    reports = result.get("splits") or [result]
    lines = ["# xinxi evaluation", ""]
    for report in reports:
        lines += [markdown_table(report), ""]
        if "per_source" in report:
            lines += [by_source_markdown(report), ""]
        skipped = [m for m in report["methods"] if "skipped" in m]
        lines += [f"- {m['name']} skipped: {m['skipped']}" for m in skipped]
    for report in reports:
        title = split_title(report)
        if "calibration" in report:
            text = calibration_markdown(report["calibration"])
            lines += [text.replace("## Calibration", f"## Calibration of xinxi ({title})", 1), ""]
        if "errors" in report:
            text = errors_markdown(report["errors"])
            lines += [text.replace("## Error analysis", f"## Error analysis of xinxi ({title}):", 1), ""]
    return "\n".join(lines)


def diagnostics_markdown(report: dict[str, Any]) -> str:
    """The calibration (and, when present, the error analysis) of :func:`training.diagnostics.diagnose` as Markdown."""
    text = calibration_markdown(report["calibration"])
    if "errors" in report:
        text += "\n" + errors_markdown(report["errors"])
    return text


def _name(label: str) -> str:
    entry = describe(label)
    return label if entry.name == label else f"{label} ({entry.name})"


def errors_markdown(report: dict[str, Any]) -> str:
    """The error analysis as Markdown."""
    lines = [f"## Error analysis ({report['items']} items)", "", "### Which topics are taken for which", ""]
    top = report["confusion"]["top"]
    if top:
        lines += ["| true topic (missed) | predicted instead | items |", "|---|---|---:|"]
        lines += [f"| {e['true']} | {e['predicted']} | {e['items']} |" for e in top]
    else:
        lines.append("No topic mistakes.")
    lines.append("")
    for label, entry in report["topics"].items():
        counts = entry["counts"]
        lines += [
            f"### {_name(label)}: {counts['false_positives']} false positives, "
            f"{counts['false_negatives']} false negatives of {counts['support']}",
            "",
        ]
        for kind_of_error, caption in (("false_positives", "predicted but wrong"), ("false_negatives", "missed")):
            rows = entry[kind_of_error]
            if not rows:
                continue
            lines += [f"Most confident, {caption}:", ""]
            lines += ["| id | title | p | true | predicted | terms |", "|---|---|---:|---|---|---|"]
            for m in rows:
                terms = "、".join(m["terms"]) or "-"
                if m["instead"]:
                    terms += "; instead " + "; ".join(f"{k}: {'、'.join(v)}" for k, v in m["instead"].items())
                lines.append(
                    f"| {m['id']} | {m['title'].replace('|', '/')} | {m['probability']:.2f} | "
                    f"{', '.join(m['true']) or NONE} | {', '.join(m['predicted']) or NONE} | {terms} |"
                )
            lines.append("")
    kind = report.get("kind")
    if kind is not None:
        lines += [f"### Kind: {kind['errors']} mistakes", ""]
        if kind["most_confident"]:
            lines += ["| id | title | true | predicted | p | terms |", "|---|---|---|---|---:|---|"]
            for m in kind["most_confident"]:
                lines.append(
                    f"| {m['id']} | {m['title'].replace('|', '/')} | {m['true']} | {m['predicted']} | "
                    f"{m['probability']:.2f} | {'、'.join(m['terms']) or '-'} |"
                )
        lines.append("")
    return "\n".join(lines)


def calibration_markdown(report: dict[str, Any]) -> str:
    """Brier score and ECE per head, then each reliability table, as Markdown."""
    heads = dict(report["topics"])
    if report.get("kind") is not None:
        heads["kind (analysis)"] = report["kind"]
    lines = ["## Calibration", "", "| head | base rate | Brier | ECE |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {e['base_rate']:.3f} | {e['brier']:.4f} | {e['ece']:.4f} |" for name, e in heads.items()]
    lines += ["", "Reliability (items in the bin / mean predicted probability / observed frequency):", ""]
    header = [f"{b['lower']:.1f}-{b['upper']:.1f}" for b in next(iter(heads.values()))["bins"]]
    lines += ["| head | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for name, entry in heads.items():
        cells = [
            f"{b['count']} / {b['mean_predicted']:.2f} / {b['observed']:.2f}" if b["count"] else "0"
            for b in entry["bins"]
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
