"""The ``detection`` queue: work that uses a trained model without changing it.

Three job types share this queue (and so one small worker pool): ``detection`` runs the model
over a batch of inputs and writes predictions with scores, ``evaluation`` measures it on a
split and draws the confusion matrix, ``export`` writes the model file to ship with an info JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from importlib.metadata import version
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from trainq import Job, PermanentError, job_type
from workers.training import METRICS_FILE, MODEL_FILE, ModelConfig, ModelHandover

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger("workers.detection")
QUEUE = "detection"
Split = Literal["train", "val", "test"]


class DetectConfig(ModelConfig):
    """Which model to run over which inputs: a split of the work directory, optionally its first rows."""

    split: Split = "test"
    limit: int | None = Field(default=None, ge=1)
    top_k: int = Field(default=3, ge=1, le=20)


class DetectResult(ModelHandover):
    """Where the predictions are, how many, how sure, and how right (the split has labels)."""

    predictions_file: str
    count: int
    mean_score: float
    accuracy: float


class EvaluateConfig(ModelConfig):
    """Which model to measure, on which split."""

    split: Split = "test"


class EvaluateResult(ModelHandover):
    """The accuracy, and where the report and the confusion-matrix PNG are."""

    accuracy: float
    report_file: str
    confusion_png: str


class ExportResult(ModelHandover):
    """The exported model file and its info JSON."""

    model_file: str
    info_file: str
    sha256: str


def _trained_model(config: ModelConfig) -> Pipeline:
    """The model in ``config``'s model directory; a missing one fails the job without retries."""
    from workers import models

    path = config.model_path() / MODEL_FILE
    if not path.exists():
        raise PermanentError(
            f"no trained model at {path}; run a training job with the same work_dir and model first"
        )
    return models.load_model(path)


@job_type("detection", input=DetectConfig, output=DetectResult, queue=QUEUE)
def detect(job: Job, config: DetectConfig) -> DetectResult:
    """Predict a label and score for each input row; write them as JSON lines."""
    from workers import datasets, reports

    model = _trained_model(config)
    data = datasets.load_split(config.work_path(), config.split)
    X, y = data.X[: config.limit], data.y[: config.limit]
    rows = reports.predict(model, X, config.top_k)
    for row, truth in zip(rows, y, strict=True):
        row["true"] = int(truth)
    path = config.model_path() / f"predictions-{config.split}.jsonl"
    reports.write_predictions(path, rows)
    correct = sum(r["label"] == r["true"] for r in rows)
    mean_score = sum(r["score"] for r in rows) / len(rows)
    log.info("%s predictions written to %s (mean score %.3f)", len(rows), path, mean_score)
    return DetectResult(
        **config.handover(),
        predictions_file=str(path),
        count=len(rows),
        mean_score=mean_score,
        accuracy=correct / len(rows),
    )


@job_type("evaluation", input=EvaluateConfig, output=EvaluateResult, queue=QUEUE)
def evaluate(job: Job, config: EvaluateConfig) -> EvaluateResult:
    """Measure the model on a split; write ``evaluation.json`` and ``confusion-matrix.png``."""
    from workers import datasets, reports

    model = _trained_model(config)
    manifest = datasets.read_manifest(config.work_path()) or {}
    labels = [int(c) for c in model.classes_]
    report = reports.evaluate(model, datasets.load_split(config.work_path(), config.split), labels)
    out = config.model_path()
    report_file, png = out / "evaluation.json", out / "confusion-matrix.png"
    datasets.write_atomic(
        report_file, lambda tmp: tmp.write_text(json.dumps({"split": config.split, **report}, indent=2))
    )
    names = manifest.get("class_names") or [str(c) for c in labels]
    title = f"{config.model} on {config.dataset} {config.split}: accuracy {report['accuracy']:.3f}"
    reports.draw_confusion(png, report["confusion_matrix"], names, title)
    log.info("accuracy %.4f on %s; confusion matrix in %s", report["accuracy"], config.split, png)
    return EvaluateResult(
        **config.handover(), accuracy=report["accuracy"], report_file=str(report_file), confusion_png=str(png)
    )


@job_type("export", input=ModelConfig, output=ExportResult, queue=QUEUE)
def export(job: Job, config: ModelConfig) -> ExportResult:
    """Copy the model to ``<model_dir>/export/`` with ``model-info.json`` (hash, versions, metrics)."""
    from workers import datasets, models

    model = _trained_model(config)
    source, target = config.model_path(), config.model_path() / "export"
    target.mkdir(parents=True, exist_ok=True)
    exported = target / f"{config.model}.joblib"
    datasets.write_atomic(exported, lambda tmp: shutil.copyfile(source / MODEL_FILE, tmp))
    digest = hashlib.sha256(exported.read_bytes()).hexdigest()
    extras = {
        name: json.loads((source / name).read_text())
        for name in (METRICS_FILE, "evaluation.json")
        if (source / name).exists()
    }
    info = {
        "model": config.model,
        "dataset": config.dataset,
        **models.describe(model),
        "file": exported.name,
        "sha256": digest,
        "format": "joblib (scikit-learn Pipeline)",
        "load": f"joblib.load('{exported.name}').predict(X)  # X: float32 rows of n_features",
        "versions": {p: version(p) for p in ("scikit-learn", "numpy", "joblib")},
        "metrics": {k: v for k, v in extras.get(METRICS_FILE, {}).items() if k != "history"},
        "evaluation": {k: extras.get("evaluation.json", {}).get(k) for k in ("split", "accuracy")},
        "exported_at": time.time(),
        "job_id": job.id,
    }
    info_file = target / "model-info.json"
    datasets.write_atomic(info_file, lambda tmp: tmp.write_text(json.dumps(info, indent=2)))
    log.info("exported %s (sha256 %s) to %s", exported.name, digest[:12], target)
    return ExportResult(
        **config.handover(), model_file=str(exported), info_file=str(info_file), sha256=digest
    )
