"""Collecting ``result_files``: only inside the job's artifact folder, each match at its own path,
unmatched entries named, symlinks never followed out of the working directory, and only a recorded
success's files published."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

import pytest

from trainq.errors import ResultFilesMissing, ResultFilesUncollected
from trainq.job.artifacts import Artifacts, Collected, collect, job_dir, publish, staging_dir
from trainq.job.record import JobRecord, JobState
from trainq.store.registry import Registry


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


def published(job: JobRecord) -> Collected:
    """``job``'s files collected and published, as its success does."""
    collected = collect(job)
    publish(job)
    return collected


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
    collected = published(job)
    # then every file written is inside the job's own folder
    written = files_under(store) - before
    assert all(job_dir(job).resolve() in p.resolve().parents for p in written), written
    inside = job_dir(job).resolve()
    assert all(Path(p).resolve() == inside or inside in Path(p).resolve().parents for p in collected.stored)


@pytest.mark.parametrize("planted", ["model.pth", "."])
def test_a_symlink_planted_in_the_store_is_not_followed(tmp_path: Path, planted: str) -> None:
    # given the job's folder already holding a symlink named like a result file (or being one),
    # pointing elsewhere
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "model.pth").write_text("weights")
    job = record(work, "model.pth")
    link = job_dir(job) / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere / planted)
    # when collected and published, then the link is replaced and nothing lands outside the job's folder
    assert published(job).stored == [str(job_dir(job) / "model.pth")]
    assert (job_dir(job) / "model.pth").read_text() == "weights" and not job_dir(job).is_symlink()
    assert list(elsewhere.iterdir()) == []


def test_symlinks_in_a_directory_are_copied_as_links_and_never_followed_out(tmp_path: Path) -> None:
    # given a checkpoint dir with a relative, an absolute and a dangling link inside it, and links out
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "out" / "ckpt").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("secret")
    (work / "out" / "ckpt" / "step-5.pt").write_text("5")
    (work / "out" / "best.pt").symlink_to("ckpt/step-5.pt")
    (work / "out" / "final.pt").symlink_to(work / "out" / "ckpt" / "step-5.pt")
    (work / "out" / "latest.pt").symlink_to("ckpt/step-4.pt")
    (work / "out" / "data").symlink_to(elsewhere)
    (work / "out" / "secret.txt").symlink_to(elsewhere / "secret.txt")
    job = record(work, "out/", "out/data/secret.txt", "out/*.txt")
    # when collected and published
    collected = published(job)
    # then links within the working directory are relative links that reach their copies
    out = job_dir(job) / "out"
    assert os.readlink(out / "best.pt") == os.readlink(out / "final.pt") == "ckpt/step-5.pt"
    assert (out / "best.pt").read_text() == "5" and os.readlink(out / "latest.pt") == "ckpt/step-4.pt"
    # and nothing is read through a link leading out: each is named once, with why
    assert not (out / "data").exists() and not (out / "secret.txt").exists()
    assert [line.split(": ")[0] for line in collected.uncollected] == ["out/data", "out/secret.txt"]
    assert "outside the working directory" in collected.uncollected[0]
    assert collected.stored == [str(out)] and collected.unmatched == []


def test_a_required_file_not_copied_fails_permanently_in_one_line(tmp_path: Path) -> None:
    # given a required file that is a dangling link, beside an optional one
    work = tmp_path / "work"
    work.mkdir()
    (work / "latest.pt").symlink_to("step-4.pt")
    (work / "other.pt").symlink_to("step-3.pt")
    optional = record(work, "*.pt")
    assert collect(optional).uncollected == [
        "latest.pt: a dangling symlink (to step-4.pt)",
        "other.pt: a dangling symlink (to step-3.pt)",
    ]
    # when it is collected as required, then the job fails for good, naming the file and why
    required = record(work, {"path": "latest.pt", "required": True})
    with pytest.raises(ResultFilesUncollected) as failed:
        Artifacts().succeeding(required)
    assert (
        str(failed.value) == "required result file latest.pt not collected: a dangling symlink (to step-4.pt)"
    )
    assert not staging_dir(required).exists()


def test_unmatched_entries_are_listed_and_required_ones_fail(tmp_path: Path) -> None:
    # given a directory entry, a glob that matches, an optional miss and a required miss
    work = tmp_path / "work"
    (work / "models" / "checkpoints").mkdir(parents=True)
    (work / "models" / "checkpoints" / "e1.pt").write_text("1")
    (work / "metrics.json").write_text("{}")
    optional = record(work, "models/checkpoints/", "*.json", "plots/*.png")
    collected = published(optional)
    assert sorted(Path(p).name for p in collected.stored) == ["checkpoints", "metrics.json"]
    assert (job_dir(optional) / "models" / "checkpoints" / "e1.pt").read_text() == "1"
    assert collected.unmatched == ["plots/*.png"]
    # when a required entry matches nothing, then the attempt fails naming it
    required = record(work, "*.json", {"path": "model.onnx", "required": True})
    with pytest.raises(ResultFilesMissing, match=r"model\.onnx"):
        collect(required)


class Jobs:
    """The registry's ``find``, over records in memory."""

    def __init__(self, *records: JobRecord) -> None:
        self.records = {r.id: r for r in records}

    def find(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)


def test_the_sweep_publishes_a_recorded_success_and_removes_what_no_delivery_will_publish(
    tmp_path: Path,
) -> None:
    # given four deliveries that collected: one recorded succeeded, one that failed after, one still
    # running, and one whose job was retried since (a newer fence)
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.pth").write_text("weights")
    base = record(work, "model.pth")
    jobs = {
        state: base.model_copy(update={"id": f"run-1.{state}", "pipeline_job": state, "state": state})
        for state in (JobState.SUCCEEDED, JobState.DEAD, JobState.RUNNING, JobState.QUEUED)
    }
    for job in jobs.values():
        collect(job)
        os.utime(staging_dir(job), (0, 0))  # long settled
    retried = jobs[JobState.QUEUED].model_copy(update={"fence": 1})
    # when the reaper sweeps
    handled = Artifacts().sweep(cast(Registry, Jobs(*jobs.values(), retried)))
    # then the success is published, the running delivery's folder kept, the others removed
    assert handled == 3
    assert (job_dir(jobs[JobState.SUCCEEDED]) / "model.pth").read_text() == "weights"
    assert [staging_dir(job).exists() for job in jobs.values()] == [False, False, True, False]
    assert not any(job_dir(job).exists() for job in list(jobs.values())[1:])


def test_matches_of_the_same_name_in_different_directories_keep_their_paths(tmp_path: Path) -> None:
    # given two runs that each wrote model.txt and metrics.json, declared by path and by a glob
    work = tmp_path / "work"
    for run, accuracy in (("a", 0.1), ("b", 0.9)):
        (work / "runs" / run).mkdir(parents=True)
        (work / "runs" / run / "model.txt").write_text(run.upper())
        (work / "runs" / run / "metrics.json").write_text(f'{{"acc": {accuracy}}}')
    job = record(work, "runs/a/model.txt", "runs/b/model.txt", "**/*.json")
    # when collected
    collected = published(job)
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
    collected = published(job)
    # then each stored file or directory is listed once, none inside another listed, and all are there
    assert [Path(p).relative_to(job_dir(job)).as_posix() for p in collected.stored] == listed
    assert (job_dir(job) / "data" / "raw" / "manifest.json").read_text() == "{}"
    assert collected.unmatched == []
