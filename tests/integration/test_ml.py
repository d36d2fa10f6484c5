"""The shipped ML handlers on real workers: data -> training -> detection/evaluation/export,
validation of model names, and a training run killed mid-way that resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from celery import chain
from PIL import Image

from tests.fixtures import Workers, run_cli, wait_for
from trainq import JobRecord, JobState, PayloadError, get_registry, get_settings
from trainq.ops.control import submit


def finished(job_id: str) -> JobRecord | None:
    record = get_registry().get(job_id)
    return record if record.state.finished else None


def succeeded(job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait for the job to finish; fail with its error unless it succeeded; return its result."""
    record = wait_for(lambda: finished(job_id), timeout, message=f"job {job_id} finished")
    assert record.state is JobState.SUCCEEDED, f"{record.state.value}: {record.error}\n{record.traceback}"
    result: dict[str, Any] = record.result
    return result


def log_lines(job_id: str) -> list[str]:
    return [line for _, line in get_registry().read_log(job_id)]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A fresh directory inside the work area (``<home>/work``), the only place jobs may use."""
    return get_settings().home / "work" / tmp_path.name


def test_pipeline_of_handlers_writes_real_artifacts(workers: Workers, work: Path) -> None:
    # given one worker for the three ML queues and a fresh work directory
    workers.start("data", "training", "detection")
    # when the data, training, evaluation, detection and export jobs run one after another
    data = succeeded(submit("data", {"dataset": "digits", "work_dir": str(work)}))
    train_id = submit("training", {"model": "mlp", "dataset": "digits", "epochs": 6, "work_dir": str(work)})
    trained = succeeded(train_id)
    common = {"model": "mlp", "dataset": "digits", "work_dir": str(work)}
    evaluated = succeeded(submit("evaluation", common))
    detected = succeeded(submit("detection", {**common, "limit": 50, "top_k": 2}))
    exported = succeeded(submit("export", common))
    # then the data job wrote three stratified splits and a manifest
    assert (
        sum(data["rows"].values()) == 1797 and data["n_features"] == 64 and data["classes"] == list(range(10))
    )
    assert json.loads(Path(data["manifest"]).read_text())["splits"]["test"]["rows"] == data["rows"]["test"]
    # and training reported per-epoch progress and wrote a good model with its metrics
    record = get_registry().get(train_id)
    assert record.progress is not None and record.progress.step == 6 and record.progress.percent == 100.0
    assert set(record.progress.metrics) == {"loss", "acc"}
    metrics = json.loads(Path(trained["metrics_file"]).read_text())
    assert metrics["accuracy"] > 0.8 and [e["epoch"] for e in metrics["history"]] == [1, 2, 3, 4, 5, 6]
    assert Path(trained["model_file"]).stat().st_size > 0 and trained["resumed_from_epoch"] == 0
    assert any("epoch 6/6" in line for line in log_lines(train_id))
    # and evaluation drew a confusion matrix that opens as an image
    with Image.open(evaluated["confusion_png"]) as image:
        assert image.format == "PNG" and image.width > 300
    report = json.loads(Path(evaluated["report_file"]).read_text())
    assert sum(map(sum, report["confusion_matrix"])) == data["rows"]["test"]
    assert report["accuracy"] == pytest.approx(metrics["accuracy"])
    # and detection wrote one prediction with scores per input
    rows = [json.loads(line) for line in Path(detected["predictions_file"]).read_text().splitlines()]
    assert len(rows) == detected["count"] == 50
    assert all(0 < r["score"] <= 1 and len(r["top"]) == 2 and r["top"][0][0] == r["label"] for r in rows)
    assert detected["accuracy"] > 0.8
    # and export wrote the model file with an info JSON that names its hash and metrics
    info = json.loads(Path(exported["info_file"]).read_text())
    assert info["sha256"] == exported["sha256"] and info["estimator"] == "MLPClassifier"
    assert info["metrics"]["accuracy"] == metrics["accuracy"] and info["evaluation"]["split"] == "test"


def test_a_celery_chain_hands_each_step_the_work_dir_and_model_of_the_step_before(
    workers: Workers, work: Path
) -> None:
    # given one worker for the three ML queues
    workers.start("data", "training", "detection")
    from workers.data import prepare
    from workers.detection import evaluate, export
    from workers.training import train

    # when a plain Celery chain names the work directory and the dataset on its first step only,
    # the model on the training step only, and a split of its own on the evaluation step
    steps = [prepare.s(dataset="iris", work_dir=str(work)), train.s(model="mlp", epochs=2)]
    result = chain(*steps, evaluate.s(split="val"), export.s()).delay()
    exported = result.get(timeout=90)
    evaluated, trained = result.parent.get(timeout=5), result.parent.parent.get(timeout=5)
    # then training wrote its model into that directory, on the dataset prepared there
    model_dir = work / "models/mlp"
    assert trained["model_file"] == str(model_dir / "model.joblib") and trained["dataset"] == "iris"
    # and evaluation measured that model on its own split: the accuracy training saw on it
    report = json.loads((model_dir / "evaluation.json").read_text())
    assert evaluated["report_file"] == str(model_dir / "evaluation.json") and report["split"] == "val"
    assert evaluated["accuracy"] == pytest.approx(trained["val_accuracy"])
    # and export shipped that very model file, with the metrics training wrote beside it
    info = json.loads(Path(exported["info_file"]).read_text())
    assert exported["sha256"] == hashlib.sha256(Path(trained["model_file"]).read_bytes()).hexdigest()
    assert info["dataset"] == "iris" and info["metrics"]["accuracy"] == trained["accuracy"]
    # and a step naming another dataset in that directory fails, not trains on iris reported as wine
    with pytest.raises(Exception, match="holds dataset 'iris', not 'wine'"):
        mixed = [prepare.s(dataset="iris", work_dir=str(work)), train.s(dataset="wine", epochs=1)]
        chain(*mixed).delay().get(timeout=60)


def test_training_alone_prepares_its_data_and_maps_deep_names_to_the_mlp(
    workers: Workers, work: Path
) -> None:
    # given only a training pool and a work directory nobody prepared
    workers.start("training")
    from workers.training import train

    # when resnet50 is trained there
    job_id = train.delay(model="resnet50", dataset="iris", epochs=2, work_dir=str(work)).id
    result = succeeded(job_id)
    # then the MLP stand-in ran on data the job prepared itself
    assert result["estimator"] == "mlp"
    assert (work / "manifest.json").exists() and Path(result["model_file"]).parent == work / "models/resnet50"
    assert any("preparing iris" in line for line in log_lines(job_id))


def test_unknown_model_or_dataset_is_refused_before_anything_is_sent(registry: Any) -> None:
    from workers.training import train

    with pytest.raises(PayloadError, match="unknown model 'gpt5'"):
        train.delay(model="gpt5", epochs=2)
    with pytest.raises(PayloadError, match="dataset"):
        submit("data", {"dataset": "receipts-v1"})
    assert registry.list() == []


def test_a_work_dir_or_model_dir_outside_the_work_area_is_refused_before_anything_is_sent(
    registry: Any,
) -> None:
    # given paths that would make a worker write files (or unpickle a model) outside its work area
    for work_dir in ("/etc", "../../x"):
        # when one is submitted with the CLI, then it exits 2 naming the rule
        result = run_cli("submit", "data", "--config", json.dumps({"dataset": "iris", "work_dir": work_dir}))
        assert result.returncode == 2, (work_dir, result.stdout, result.stderr)
        assert "work_dir" in result.stderr and "must be inside TRAINQ_HOME/work" in result.stderr
    for work_dir in ("~", "a/../../b", str(get_settings().home / "work" / ".." / "x")):
        with pytest.raises(PayloadError, match="work_dir"):
            submit("data", {"dataset": "iris", "work_dir": work_dir})
    with pytest.raises(PayloadError, match="model_dir"):
        submit("evaluation", {"model": "sgd", "model_dir": "/etc"})
    # while a relative one, or an absolute one inside the work area, is accepted
    assert submit("data", {"dataset": "iris", "work_dir": "nightly/iris"})
    assert submit("data", {"dataset": "iris", "work_dir": str(get_settings().home / "work" / "iris")})
    assert len(registry.list()) == 2


def test_detection_without_a_trained_model_fails_at_once(workers: Workers, work: Path) -> None:
    workers.start("detection")
    job_id = submit("detection", {"work_dir": str(work), "model": "sgd"})
    record = wait_for(lambda: finished(job_id), message="detection finished")
    assert record.state is JobState.FAILED and record.failures == 1
    assert record.error is not None and "no trained model" in record.error


def test_training_killed_mid_way_resumes_from_its_last_checkpoint(workers: Workers, work: Path) -> None:
    from workers.models import CHECKPOINT, load_checkpoint

    # given a slow 20-epoch training run on a worker
    first = workers.start("training", name="doomed")
    config = {"model": "sgd", "dataset": "digits", "epochs": 20, "pace_s": 0.25, "work_dir": str(work)}
    job_id = submit("training", config)
    wait_for(lambda: _step(job_id) >= 3, 60, message="epoch 3 reported")
    # when its worker's whole process group is killed mid-run and another worker takes over
    first.kill()
    checkpoint = load_checkpoint(get_settings().home / "checkpoints" / job_id / CHECKPOINT)
    assert checkpoint is not None and 3 <= checkpoint.epoch < 20
    workers.start("training", name="rescuer")
    result = succeeded(job_id, timeout=90)
    # then the second attempt started after the last checkpointed epoch, not from scratch
    record = get_registry().get(job_id)
    assert record.attempt == 2 and record.recoveries == 1
    assert result["resumed_from_epoch"] == checkpoint.epoch
    assert f"attempt 2: resuming from epoch {checkpoint.epoch} of 20" in "\n".join(log_lines(job_id))
    history = json.loads(Path(work / "models/sgd/metrics.json").read_text())["history"]
    assert [e["epoch"] for e in history] == list(range(1, 21))
    assert history[: checkpoint.epoch] == [vars(e) for e in checkpoint.history]


def _step(job_id: str) -> float:
    progress = get_registry().get(job_id).progress
    return progress.step if progress else 0
