"""The three floors: model <- training <- service, and one door into training."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    """Every module a package's files import, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_service_enters_training_only_through_its_door() -> None:
    reaching_in = {
        path: sorted(name for name in names if name.startswith("training."))
        for path, names in _imports("service").items()
    }
    assert {path: names for path, names in reaching_in.items() if names} == {}


def test_training_never_imports_the_service() -> None:
    upward = {path: sorted(n for n in names if n.split(".")[0] == "service") for path, names in _imports("training").items()}
    assert {path: names for path, names in upward.items() if names} == {}


def test_the_door_lists_what_the_service_uses() -> None:
    import training

    used = set()
    for path in sorted((ROOT / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "training":
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module == "training":
                used.update(alias.name for alias in node.names)
    assert used, "the service uses training somewhere"
    assert used <= set(training.__all__)


def test_a_batch_worker_imports_the_inference_code_and_not_the_readers_or_training() -> None:
    """Each worker process of ``xinxi predict --workers N`` imports ``service.batch.scoring``: pandas, pyarrow,
    scikit-learn and the training code there would cost every worker some 130 MB and its start-up time."""
    import subprocess
    import sys

    probe = (
        "import sys, service.batch.scoring; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pandas', 'pyarrow', 'sklearn', 'training', 'fastapi', 'sqlalchemy', 'openpyxl', 'dask'}))"
    )
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_the_predict_command_reads_and_writes_a_csv_without_pandas_or_scikit_learn(tmp_path: Path, model_dir: Path) -> None:
    """The process of ``xinxi predict`` that reads and writes the file shares the cores with the workers and
    adds to the job's memory: it takes the training door's light names only (its error, encodings, headers)."""
    import subprocess
    import sys

    source = tmp_path / "in.csv"
    source.write_text("标题,正文\n一,某镇召开会议部署防汛工作\n二,\n", encoding="utf-8")
    probe = (
        "import sys; from pathlib import Path; from service.batch.runner import BatchOptions, score_file; "
        f"score_file(Path({str(source)!r}), Path({str(tmp_path / 'out.csv')!r}), BatchOptions(), "
        f"model_dir=Path({str(model_dir)!r})); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'sklearn', 'openpyxl'}), "
        "sorted(m for m in sys.modules if m.startswith('training.')))"
    )
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[] ['training.files']"
    assert (tmp_path / "out.csv").read_text(encoding="utf-8-sig").count("\n") == 3
