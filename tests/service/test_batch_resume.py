"""An interrupted `xinxi predict` (kill -9, Ctrl-C) leaves valid output, and --resume finishes it exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.service.archives import archive_rows, read_csv, write_csv
from training.data import Item

ROOT = Path(__file__).resolve().parents[2]
COPIES = 50  # 2,000 rows: a few seconds of scoring, so that the run can be stopped in the middle


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, corpus: list[Item]) -> Path:
    rows = archive_rows(corpus)
    many = [[f"{row[0]}-{n}", *row[1:]] for n in range(COPIES) for row in rows]
    return write_csv(tmp_path_factory.mktemp("resume") / "archive.csv", many, encoding="gbk")


def predict(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["predict", *map(str, args)])
    return result.exit_code, result.output


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "predict", *map(str, args)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def wait_for_checkpoint(process: subprocess.Popen[str], resume_file: Path, rows: int) -> None:
    """Poll the other process's resume file until it records ``rows`` rows (bounded)."""
    deadline = time.monotonic() + 60
    while True:
        if resume_file.exists():
            try:
                if json.loads(resume_file.read_text(encoding="utf-8"))["rows"] >= rows:
                    return
            except ValueError:
                pass  # replaced between the check and the read
        assert process.poll() is None, f"the run ended before it could be interrupted: {process.communicate()[0]}"
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.01)


def test_kill_9_leaves_valid_csv_and_resume_writes_what_an_uninterrupted_run_writes(
    archive: Path, model_dir: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.csv"
    code, text = predict("--model", model_dir, "--input", archive, "--output", reference, "--chunk-size", "20")
    assert code == 0, text

    output = tmp_path / "out.csv"
    args = ("--model", model_dir, "--input", archive, "--output", output, "--chunk-size", "20")
    process = start(*args)
    wait_for_checkpoint(process, tmp_path / "out.csv.resume.json", 100)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    header, partial = read_csv(output)  # whatever was written parses, with whole rows from the first
    _, expected = read_csv(reference)
    done = json.loads((tmp_path / "out.csv.resume.json").read_text(encoding="utf-8"))["rows"]
    assert 100 <= done < len(expected)
    assert partial[:done] == expected[:done]

    code, text = predict(*args, "--title-col", "备注", "--resume")
    assert code == 2 and "cannot resume: the options changed" in text
    code, text = predict(*args, "--resume")
    assert code == 0, text
    assert f"resumed after row {done:,}" in text.replace("\n", " ")
    assert output.read_bytes() == reference.read_bytes()
    assert not (tmp_path / "out.csv.resume.json").exists()
    code, text = predict(*args, "--resume")
    assert code == 2 and "nothing to resume" in text


def test_ctrl_c_says_how_to_resume_and_parquet_parts_resume_to_the_same_table(
    archive: Path, model_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.parquet"
    args = ("--model", model_dir, "--input", archive, "--output", output, "--chunk-size", "20")
    process = start(*args, "--workers", "2")
    wait_for_checkpoint(process, tmp_path / "out.parquet.resume.json", 60)
    process.send_signal(signal.SIGINT)
    text = process.communicate(timeout=60)[0]
    assert process.returncode == 130, text
    assert "interrupted after" in text and "--resume" in " ".join(text.split())
    parts = sorted((tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts and all(len(pd.read_parquet(part)) == 20 for part in parts), "each part is a valid file"

    code, text = predict(*args, "--resume")  # in this process: the number of workers is no part of the result
    assert code == 0, text
    reference = tmp_path / "reference.parquet"
    code, text = predict("--model", model_dir, "--input", archive, "--output", reference)
    assert code == 0, text
    resumed, whole = pd.read_parquet(output), pd.read_parquet(reference)
    assert len(whole) == COPIES * 40
    pd.testing.assert_frame_equal(resumed, whole)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_resume_refuses_an_output_changed_since_the_interruption(
    archive: Path, model_dir: Path, tmp_path: Path
) -> None:
    from service.batch import BatchError, BatchInterrupted, BatchOptions, score_file

    calls: list[int] = []

    def stop_after_two_chunks(rows: int, *_: object) -> None:
        calls.append(rows)
        if len(calls) == 3:
            raise KeyboardInterrupt

    output = tmp_path / "out.jsonl"
    with pytest.raises(BatchInterrupted, match=r"interrupted after 40 rows; they are saved in .*out\.jsonl"):
        score_file(archive, output, BatchOptions(chunk_size=20), model_dir=model_dir, progress=stop_after_two_chunks)
    assert len(output.read_text(encoding="utf-8").splitlines()) == 40
    output.write_text("{}\n", encoding="utf-8")
    with pytest.raises(BatchError, match=r"out\.jsonl is shorter than the [\d,]+ bytes recorded"):
        score_file(archive, output, BatchOptions(chunk_size=20, resume=True), model_dir=model_dir)
    with pytest.raises(BatchError, match=r"cannot resume: the options changed"):
        score_file(archive, output, BatchOptions(chunk_size=20, resume=True, unit_col="备注"), model_dir=model_dir)
