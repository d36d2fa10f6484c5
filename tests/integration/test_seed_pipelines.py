"""Seed-style pipelines end to end (issue 12): a batch-queue file runs as written on real workers,
runs are found by their pipeline id, and result files that are missing are said, never skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import redis
from click.testing import CliRunner, Result

from tests.fixtures import ROOT, Workers, run_cli
from trainq import Pipeline, get_registry
from trainq.cli import main

SEED = ROOT / "examples" / "seeds" / "ml-pipeline.json"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_the_seed_ml_pipeline_runs_and_its_results_are_fetched_by_pipeline_id(
    workers: Workers, tmp_path: Path
) -> None:
    # given the seed's ML pipeline file (queue_id, "4h" timeouts, ${WANDB_API_KEY}) and a worker
    # that has the secret
    workers.start("command", env={"WANDB_API_KEY": "wandb-key-for-the-test"})
    path = tmp_path / "ml-pipeline.json"
    shutil.copy(SEED, path)
    # when it runs to the end
    ran = run_cli("pipeline", "run", str(path), "--wait", timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = ran.stdout.splitlines()[0]
    assert run_id.startswith("ml-training-20260127-")
    # then status and results take the pipeline id (its queue_id) for the latest run
    status = cli("pipeline", "status", "ml-training-20260127")
    assert status.exit_code == 0 and run_id in status.output and "succeeded" in status.output
    out = tmp_path / "ml-results"
    fetched = cli("pipeline", "results", "ml-training-20260127", "--output", str(out))
    assert fetched.exit_code == 0, fetched.output
    manifest = out / "download" / "data" / "raw" / "manifest.json"
    assert json.loads(manifest.read_text()) == {"dataset": "cifar10", "files": 2}
    assert (out / "train" / "models" / "checkpoints" / "epoch-3.pth").read_text() == "weights"
    assert sorted(p.name for p in (out / "export" / "exports").iterdir()) == ["model.onnx", "model_info.json"]
    assert "not collected" not in fetched.output
    assert "Epoch 3/3 - key set: True" in run_cli("logs", f"{run_id}.train").stdout


def test_unmatched_result_files_are_listed_and_required_ones_fail_the_job(
    workers: Workers, tmp_path: Path
) -> None:
    # given a job whose result glob matches nothing, and one whose *required* file never appears
    workers.start("command")
    path = tmp_path / "gaps.json"
    jobs = [
        {"job_id": "loose", "command": "true", "result_files": ["plots/*.png"]},
        {
            "job_id": "strict",
            "command": "true",
            "retry_count": 0,
            "result_files": [{"path": "model.onnx", "required": True}],
        },
    ]
    path.write_text(json.dumps({"pipeline_id": "gaps", "jobs": jobs}))
    ran = run_cli("pipeline", "run", str(path), "--wait", timeout=120)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    run_id = ran.stdout.splitlines()[0]
    # then the loose job succeeded with its unmatched entry in its record and its log
    loose = get_registry().get(f"{run_id}.loose")
    assert loose.state.value == "succeeded" and loose.unmatched_result_files == ["plots/*.png"]
    assert "result_files entry 'plots/*.png' matched nothing" in run_cli("logs", loose.id).stdout
    # and the strict one failed, naming the file
    strict = get_registry().get(f"{run_id}.strict")
    assert strict.state.value in ("failed", "dead") and "model.onnx" in (strict.error or "")
    # and results says what it could not find, and exits 1 with nothing collected
    fetched = cli("pipeline", "results", "gaps", "--output", str(tmp_path / "out"))
    assert fetched.exit_code == 1
    assert "not collected: loose: plots/*.png matched nothing" in fetched.output
    assert f"not collected: strict: model.onnx (the job is {strict.state.value})" in fetched.output


def test_cancel_resume_and_status_take_a_pipeline_id_for_its_latest_run(redis_client: redis.Redis) -> None:
    # given two runs of one pipeline, with no worker to take their jobs
    first = Pipeline("idle").add("a", command="true").run()
    latest = Pipeline("idle").add("a", command="true").run()
    # when cancelled and resumed by the pipeline id, then it is the latest run that moves
    cancelled = cli("pipeline", "cancel", "idle")
    assert cancelled.exit_code == 0 and cancelled.output.startswith(f"{latest} cancelled")
    assert cli("pipeline", "status", first, "--json").output.count('"state": "running"') == 1
    resumed = cli("pipeline", "resume", "idle")
    assert resumed.exit_code == 0 and resumed.output.startswith(f"{latest} resumed")
    # and a name that is neither a run nor a pipeline is exit 2
    missing = cli("pipeline", "status", "no-such-pipeline")
    assert missing.exit_code == 2 and "no pipeline run or pipeline id 'no-such-pipeline'" in missing.output
