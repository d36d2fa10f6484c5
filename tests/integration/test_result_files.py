"""Result files through the user's door (a pipeline file, the ``trainq`` CLI, a command worker):
symlinks in a collected directory, and what failed attempts leave behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.fixtures import Workers, run_cli
from trainq import get_registry
from trainq.job.record import JobRecord
from trainq.settings import get_settings


def run(tmp_path: Path, jobs: list[dict[str, Any]], expect_rc: int) -> str:
    """Run the pipeline ``jobs`` from ``tmp_path/wd`` with the CLI until it ends; its run id."""
    work = tmp_path / "wd"
    work.mkdir(exist_ok=True)
    path = work / "pipeline.json"
    path.write_text(json.dumps({"pipeline_id": "files", "jobs": jobs}))
    ran = run_cli("pipeline", "run", str(path), "--wait", timeout=120)
    assert ran.returncode == expect_rc, ran.stdout + ran.stderr
    return ran.stdout.splitlines()[0]


def job(run_id: str, job_id: str) -> JobRecord:
    return get_registry().get(f"{run_id}.{job_id}")


def stored_files(run_id: str) -> list[Path]:
    """Every path in the run's folder of the artifact store (links not followed)."""
    root = get_settings().artifacts_dir / run_id
    return sorted(p.relative_to(root) for p in root.rglob("*")) if root.exists() else []


def test_a_dangling_link_in_a_checkpoint_dir_is_copied_as_a_link_and_the_job_runs_once(
    workers: Workers, tmp_path: Path
) -> None:
    # given a training job whose output dir holds a pruned checkpoint's `latest` link and a live one
    workers.start("command")
    train = (
        "echo run >> runs.log; mkdir -p out/ckpt && echo w > out/model.pth && echo c > out/ckpt/step-5.pt"
        " && ln -sfn ckpt/step-4.pt out/latest.pt && ln -sfn ckpt/step-5.pt out/best.pt"
    )
    jobs = [
        {"job_id": "train", "command": train, "retry_count": 1, "result_files": ["out/"]},
        {"job_id": "evaluate", "command": "echo eval", "depends_on": ["train"]},
    ]
    # when it runs
    run_id = run(tmp_path, jobs, expect_rc=0)
    # then the command ran once, and its dependant ran
    assert (tmp_path / "wd" / "runs.log").read_text() == "run\n"
    assert job(run_id, "train").state.value == "succeeded"
    assert job(run_id, "evaluate").state.value == "succeeded"
    # and results exports the links as links: the live one still reaches its checkpoint in the copy
    out = tmp_path / "res"
    fetched = run_cli("pipeline", "results", run_id, "--output", str(out))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "not collected" not in fetched.stderr
    copied = out / "train" / "out"
    assert (copied / "model.pth").read_text() == "w\n"
    assert os.readlink(copied / "latest.pt") == "ckpt/step-4.pt"
    assert (copied / "best.pt").is_symlink() and (copied / "best.pt").read_text() == "c\n"


def test_links_leading_out_of_the_working_directory_are_never_followed(
    workers: Workers, tmp_path: Path
) -> None:
    # given an output dir linking to /etc and to a sibling folder, and a file entry through the link
    workers.start("command")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.txt").write_text("secret")
    command = "mkdir -p out && echo w > out/model.pth && ln -sfn /etc out/etcdir"
    command += " && ln -sfn ../../elsewhere out/data"
    jobs = [{"job_id": "train", "command": command, "result_files": ["out/", "out/etcdir/hostname"]}]
    # when it runs
    run_id = run(tmp_path, jobs, expect_rc=0)
    # then it succeeds, nothing from outside its working directory in the store, and it says so
    train = job(run_id, "train")
    assert train.state.value == "succeeded", train.error
    assert stored_files(run_id) == [Path("train"), Path("train/out"), Path("train/out/model.pth")]
    assert any(line.startswith("out/etcdir:") for line in train.uncollected_result_files)
    assert any(line.startswith("out/data:") for line in train.uncollected_result_files)
    shown = run_cli("show", train.id).stdout
    assert "not collected" in shown and "out/etcdir: a symlink to /etc" in shown, shown
    assert "not collected: out/data, out/etcdir" in run_cli("pipeline", "status", run_id).stdout
    fetched = run_cli("pipeline", "results", run_id, "--output", str(tmp_path / "res"))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "not collected: train: out/etcdir: " in fetched.stderr
    assert sorted(p.name for p in (tmp_path / "res").rglob("*")) == ["model.pth", "out", "train"]


def test_results_exports_nothing_a_dead_jobs_attempts_collected(workers: Workers, tmp_path: Path) -> None:
    # given a job that writes out/ but never its required file: each attempt fails after collecting out/
    workers.start("command")
    files = ["out/", {"path": "model.onnx", "required": True}]
    command = "mkdir -p out && echo w > out/model.pth"
    jobs = [{"job_id": "train", "command": command, "retry_count": 1, "result_files": files}]
    # when it runs out of attempts
    run_id = run(tmp_path, jobs, expect_rc=1)
    assert job(run_id, "train").state.value == "dead"
    # then the store holds nothing of it, and results exports nothing and exits 1
    assert stored_files(run_id) == []
    out = tmp_path / "res"
    fetched = run_cli("pipeline", "results", run_id, "--output", str(out))
    assert fetched.returncode == 1, fetched.stdout + fetched.stderr
    assert "not collected: train: out/, model.onnx (the job is dead)" in fetched.stderr
    assert not out.exists() or not any(out.rglob("*"))


def test_a_required_file_that_cannot_be_copied_fails_the_job_at_once(
    workers: Workers, tmp_path: Path
) -> None:
    # given a job whose required file is a link to a pruned checkpoint
    workers.start("command")
    command = "echo run >> runs.log; mkdir -p out && ln -sfn ckpt/step-4.pt out/latest.pt"
    files = [{"path": "out/latest.pt", "required": True}]
    jobs = [{"job_id": "train", "command": command, "retry_count": 2, "result_files": files}]
    # when it runs
    run_id = run(tmp_path, jobs, expect_rc=1)
    # then it failed without a retry (the work succeeded; running it again cannot help), in one line
    train = job(run_id, "train")
    assert train.state.value == "failed" and train.attempt == 1
    assert (tmp_path / "wd" / "runs.log").read_text() == "run\n"
    assert train.error == (
        "ResultFilesUncollected: required result file out/latest.pt not collected: "
        "a dangling symlink (to ckpt/step-4.pt)"
    )
