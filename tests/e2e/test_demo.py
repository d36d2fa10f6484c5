"""``trainq demo`` as the README runs it: on the embedded default with nothing running, it starts
the stack, runs examples/ml-pipeline.yaml end to end, prints the metrics, and stops what it started.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.test_up import free_port, home, trainq  # noqa: F401  (home is a fixture)
from tests.fixtures import Workers, run_cli, start_redis
from trainq.ops import embedded

pytestmark = pytest.mark.slow


def test_demo_runs_the_ml_pipeline_and_leaves_its_artifacts(home: Path) -> None:  # noqa: F811
    # when the demo runs on a fresh home with no stack up
    web_port = free_port()
    result = trainq(home, "demo", "--flower-port", str(free_port()), "--web-port", str(web_port), timeout=240)
    sys.stdout.write(result.stdout)
    # then it succeeds, showing each job's progress and the metrics table
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "stack up:" in out and "pipeline run ml-demo-" in out and "pipeline succeeded" in out
    assert f"watch it at http://127.0.0.1:{web_port}/runs/ml-demo-" in out
    assert "15/15" in out and "acc=" in out
    for job in ("data", "train", "evaluate", "detect", "export"):
        assert f"{job}  " in out
    # and the model, its metrics, the confusion matrix and the export are where it says
    model_dir = home / "work" / "demo" / "models" / "mlp"
    assert str(model_dir / "model.joblib") in out
    assert (model_dir / "model.joblib").stat().st_size > 0
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "digits" and metrics["accuracy"] > 0.8
    with Image.open(model_dir / "confusion-matrix.png") as image:
        image.verify()
        assert image.format == "PNG"
    info = json.loads((model_dir / "export" / "model-info.json").read_text())
    assert (model_dir / "export" / info["file"]).exists() and info["evaluation"]["accuracy"] > 0.8
    # and the stack it started is stopped, the embedded Redis included
    assert not embedded.is_running(home)


def test_demo_summary_shows_a_failed_jobs_error_with_its_secret_masked(
    tmp_path: Path, workers: Workers
) -> None:
    # given a private Redis, a worker for the probe queue whose MY_TOKEN is a secret, and a pipeline
    # whose job fails with that secret in its error
    port, secret = free_port(), "s3cr3t-demo-token"
    workers.started.append(start_redis(tmp_path / "redis", port))
    env = {"TRAINQ_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    workers.start("probe", env={**env, "MY_TOKEN": secret})
    failing = {
        "job_id": "leaky",
        "type": "environ",
        "config": {"name": "API_TOKEN", "fail": True},
        "environment": {"API_TOKEN": "${MY_TOKEN}"},
        "retry_count": 0,
    }
    pipeline = tmp_path / "failing.json"
    pipeline.write_text(json.dumps({"pipeline_id": "failing", "jobs": [failing]}))
    # when the demo runs that pipeline on the running worker
    result = run_cli("demo", str(pipeline), "--no-flower", "--no-web", env=env, timeout=120)
    # then it exits 1 and its summary shows the job's error on one line, the secret masked
    assert result.returncode == 1, result.stdout + result.stderr
    assert "using the running workers for probe" in result.stdout
    assert "\n  leaky  RuntimeError: rejected ***\n" in result.stdout, result.stdout
    assert secret not in result.stdout + result.stderr
