"""Collecting ``result_files``: only inside the job's artifact folder, each match at its own path,
unmatched entries named."""

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
    inside = job_dir(job).resolve()
    assert all(Path(p).resolve() == inside or inside in Path(p).resolve().parents for p in collected.stored)


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
    assert (job_dir(optional) / "models" / "checkpoints" / "e1.pt").read_text() == "1"
    assert collected.unmatched == ["plots/*.png"]
    # when a required entry matches nothing, then the attempt fails naming it
    required = record(work, "*.json", {"path": "model.onnx", "required": True})
    with pytest.raises(ResultFilesMissing, match=r"model\.onnx"):
        collect(required)


def test_matches_of_the_same_name_in_different_directories_keep_their_paths(tmp_path: Path) -> None:
    # given two runs that each wrote model.txt and metrics.json, declared by path and by a glob
    work = tmp_path / "work"
    for run, accuracy in (("a", 0.1), ("b", 0.9)):
        (work / "runs" / run).mkdir(parents=True)
        (work / "runs" / run / "model.txt").write_text(run.upper())
        (work / "runs" / run / "metrics.json").write_text(f'{{"acc": {accuracy}}}')
    job = record(work, "runs/a/model.txt", "runs/b/model.txt", "**/*.json")
    # when collected
    collected = collect(job)
    # then each is stored at its path relative to the working directory, none overwritten
    stored = job_dir(job)
    assert (stored / "runs/a/model.txt").read_text() == "A" and (
        stored / "runs/b/model.txt"
    ).read_text() == "B"
    assert (stored / "runs/a/metrics.json").read_text() == '{"acc": 0.1}'
    assert (stored / "runs/b/metrics.json").read_text() == '{"acc": 0.9}'
    assert [Path(p).relative_to(stored).as_posix() for p in collected.stored] == [
        "runs/a/model.txt",
        "runs/b/model.txt",
        "runs/a/metrics.json",
        "runs/b/metrics.json",
    ]


@pytest.mark.parametrize(
    ("entries", "listed"),
    [
        (["**", "."], ["."]),
        (["**"], ["data", "top.txt"]),
        (["data/raw/*.json", "data/", "top.txt", "*.txt"], ["data", "top.txt"]),
    ],
)
def test_what_several_matches_cover_is_listed_once(
    tmp_path: Path, entries: list[str], listed: list[str]
) -> None:
    # given a manifest two directories down and a file at the top
    work = tmp_path / "work"
    (work / "data" / "raw").mkdir(parents=True)
    (work / "data" / "raw" / "manifest.json").write_text("{}")
    (work / "top.txt").write_text("top")
    job = record(work, *entries)
    # when entries that overlap are collected
    collected = collect(job)
    # then each stored file or directory is listed once, none inside another listed, and all are there
    assert [Path(p).relative_to(job_dir(job)).as_posix() for p in collected.stored] == listed
    assert (job_dir(job) / "data" / "raw" / "manifest.json").read_text() == "{}"
    assert collected.unmatched == []
