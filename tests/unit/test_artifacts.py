"""Collecting ``result_files``: only inside the job's artifact folder, unmatched entries named."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trainq.errors import ResultFilesMissing
from trainq.job.artifacts import collect, job_dir
from trainq.job.record import JobRecord, JobState


def record(cwd: Path, *result_files: object) -> JobRecord:
    """A pipeline job record whose ``result_files`` skipped validation (as a Python caller can)."""
    now = time.time()
    return JobRecord(
        id="run-1.train",
        type="command",
        queue="command",
        name="train",
        state=JobState.RUNNING,
        priority=5,
        created_at=now,
        updated_at=now,
        options={"cwd": str(cwd), "result_files": list(result_files)},
        pipeline_id=f"run-{cwd.parent.name}",
        pipeline_job="train",
    )


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()} if path.exists() else set()


@pytest.mark.parametrize("pattern", ["..", "../*", "/etc/hostname", "."])
def test_nothing_is_written_outside_the_jobs_folder(tmp_path: Path, pattern: str) -> None:
    # given a working directory beside another job's artifacts, and an entry that points up or out
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "a.txt").write_text("a")
    job = record(work, pattern)
    store = job_dir(job).parent  # the run's folder, holding every job's artifacts
    before = files_under(store)
    # when collected
    collected = collect(job)
    # then every file written is inside the job's own folder
    written = files_under(store) - before
    assert all(job_dir(job).resolve() in p.resolve().parents for p in written), written
    assert all(Path(p).resolve().parent == job_dir(job).resolve() for p in collected.stored)


def test_a_symlink_planted_in_the_store_is_not_followed(tmp_path: Path) -> None:
    # given the job's folder already holding a symlink named like a result file, pointing elsewhere
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "model.pth").write_text("weights")
    job = record(work, "model.pth")
    job_dir(job).mkdir(parents=True)
    (job_dir(job) / "model.pth").symlink_to(elsewhere / "model.pth")
    # when collected, then nothing lands outside the job's folder
    assert collect(job).unmatched == ["model.pth"]
    assert not (elsewhere / "model.pth").exists()


def test_unmatched_entries_are_listed_and_required_ones_fail(tmp_path: Path) -> None:
    # given a directory entry, a glob that matches, an optional miss and a required miss
    work = tmp_path / "work"
    (work / "models" / "checkpoints").mkdir(parents=True)
    (work / "models" / "checkpoints" / "e1.pt").write_text("1")
    (work / "metrics.json").write_text("{}")
    optional = record(work, "models/checkpoints/", "*.json", "plots/*.png")
    collected = collect(optional)
    assert sorted(Path(p).name for p in collected.stored) == ["checkpoints", "metrics.json"]
    assert (job_dir(optional) / "checkpoints" / "e1.pt").read_text() == "1"
    assert collected.unmatched == ["plots/*.png"]
    # when a required entry matches nothing, then the attempt fails naming it
    required = record(work, "*.json", {"path": "model.onnx", "required": True})
    with pytest.raises(ResultFilesMissing, match=r"model\.onnx"):
        collect(required)
