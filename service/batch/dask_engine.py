"""``--engine dask``: the chunks of a file scored on a Dask cluster, one machine or many.

This process reads the file and writes the output exactly as the local engine
does (same readers, writers, checkpoints and resume); only the scoring of
each chunk runs on the cluster's workers. The model goes to each worker once,
as a worker plugin carrying the version's files (checked against their
manifest on the worker, as on any load), not with every task; workers need
xinxi installed, but no shared disk.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model import Predictor
from model.artifact import MANIFEST_FILE, check_format, read_manifest
from model.state import STATE_FILES
from service.batch.formats import Chunk, Columns
from service.batch.scoring import score_in_order, score_items

# The predictors a worker process holds, by model version (filled by the plugin's setup).
_PREDICTORS: dict[str, Predictor] = {}

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - dask is a dependency; this keeps the import error readable
    WorkerPlugin = object  # type: ignore[assignment,misc]


class ModelPlugin(WorkerPlugin):  # type: ignore[misc,valid-type]
    """Carries one model version's files to every worker and loads it there once."""

    def __init__(self, version: str, files: dict[str, bytes]) -> None:
        self.version = version
        self.files = files
        self.name = f"xinxi-model-{version}"

    def setup(self, worker: Any) -> None:
        if self.version in _PREDICTORS:
            return
        base = getattr(worker, "local_directory", None) or tempfile.gettempdir()
        directory = Path(tempfile.mkdtemp(prefix=f"xinxi-{self.version}-", dir=base))
        for name, data in self.files.items():
            (directory / name).write_bytes(data)
        _PREDICTORS[self.version] = Predictor.load(directory)


def score_on_worker(version: str, items: list[dict[str, Any]]) -> list[list[Any]]:
    """The task: score a chunk's items with the worker's copy of the model."""
    predictor = _PREDICTORS.get(version)
    if predictor is None:
        raise RuntimeError(f"model {version} is not loaded on this worker; its plugin did not run")
    return score_items(predictor, items)


class DaskEngine:
    """Scores chunks on the cluster at ``scheduler`` (``tcp://host:8786``), or on a local one when None."""

    def __init__(self, model_dir: Path, scheduler: str | None) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(
                n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self.cluster)
        manifest = read_manifest(model_dir)
        check_format(model_dir, manifest)
        self.version = str(manifest.get("version") or model_dir.name)
        files = {name: (model_dir / name).read_bytes() for name in (*STATE_FILES, MANIFEST_FILE)}
        self.client.register_plugin(ModelPlugin(self.version, files))
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def score(self, chunks: Iterator[Chunk], columns: Columns, topics: int) -> Iterator[tuple[Chunk, list[list[Any]]]]:
        def submit(items: list[dict[str, Any]]) -> Any:
            return self.client.submit(score_on_worker, self.version, items, pure=False)

        yield from score_in_order(chunks, columns, topics, submit, 2 * self.workers)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
