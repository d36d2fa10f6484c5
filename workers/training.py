"""The ``training`` queue: train a small model for N epochs, checkpointing and resuming.

Model names: ``sgd`` (logistic regression by SGD) and ``mlp`` (a one-hidden-layer network).
Names of deep-network families (``resnet50``, ``vgg16``, ``efficientnet_b0``, ``cnn``, ...)
train the ``mlp`` as their stand-in, since the bundled datasets are tiny 8x8 images and
tables; the result's ``estimator`` says which one ran. Any other name is rejected before
the job is sent.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from trainq import Job, job_type
from trainq.job.retry import RetryPolicy
from workers.data import DataConfig, Handover, ensure_prepared, inside_work_area

log = logging.getLogger("workers.training")
ESTIMATORS = ("sgd", "mlp")
#: Deep-network families that train the ``mlp`` stand-in on the bundled datasets.
DEEP_FAMILIES = (
    "resnet",
    "vgg",
    "efficientnet",
    "mobilenet",
    "densenet",
    "inception",
    "vit",
    "convnet",
    "cnn",
)
MODEL_FILE = "model.joblib"
METRICS_FILE = "metrics.json"


def estimator_for(model: str) -> str:
    """The estimator that trains for model name ``model`` (``sgd`` or ``mlp``)."""
    return model if model in ESTIMATORS else "mlp"


class ModelConfig(DataConfig):
    """A model name, and where its files are (default ``<work_dir>/models/<model>``).

    ``model_dir`` stays inside the work area like ``work_dir``: models are loaded with joblib (pickle).
    """

    model: str = "sgd"
    model_dir: str | None = None

    _confined_model = field_validator("model_dir")(inside_work_area)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        name = value.strip().lower()
        if name in ESTIMATORS or (name.startswith(DEEP_FAMILIES) and re.fullmatch(r"[a-z0-9_.-]+", name)):
            return name
        families = ", ".join(f"{f}*" for f in DEEP_FAMILIES)
        raise ValueError(f"unknown model {value!r}: use sgd or mlp (or a deep-network name: {families})")

    def model_path(self) -> Path:
        """The model directory as an absolute path (relative ones are under the work directory)."""
        return self.work_path() / (self.model_dir or f"models/{self.model}")

    def handover(self) -> dict[str, Any]:
        """The data's handover, plus the model and its ``model_dir`` as given (None: the model's default)."""
        return {**super().handover(), "model": self.model, "model_dir": self.model_dir}


class ModelHandover(Handover):
    """A ``Handover`` that also names the model, so the next step takes the model this one used."""

    model: str
    model_dir: str | None


class TrainConfig(ModelConfig):
    """What to train, on what, for how long."""

    epochs: int = Field(default=5, ge=1, le=1000)
    learning_rate: float = Field(default=0.01, gt=0, le=1)
    seed: int = 0
    #: Minimum seconds per epoch: slows a toy run down so its progress can be watched.
    pace_s: float = Field(default=0.0, ge=0, le=60)


class TrainResult(ModelHandover):
    """Where the model and its metrics are, and how the run went."""

    model_file: str
    metrics_file: str
    estimator: str
    epochs: int
    accuracy: float
    val_accuracy: float
    loss: float
    resumed_from_epoch: int


@job_type("training", input=TrainConfig, output=TrainResult, retry=RetryPolicy(max_retries=2), timeout="4h")
def train(job: Job, config: TrainConfig) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``; resume from the checkpoint on a later attempt."""
    from workers import datasets, models, reports

    manifest = ensure_prepared(config)
    work, out = config.work_path(), config.model_path()
    estimator = estimator_for(config.model)
    checkpoint_file = job.checkpoint_dir / models.CHECKPOINT
    checkpoint = models.load_checkpoint(checkpoint_file) if job.attempt > 1 else None
    if checkpoint is not None:
        log.info("attempt %s: resuming from epoch %s of %s", job.attempt, checkpoint.epoch, config.epochs)
    else:
        checkpoint = models.Checkpoint(models.build(estimator, config.seed, config.learning_rate), [])
        log.info(
            "training %s (%s) on %s for %s epochs", config.model, estimator, config.dataset, config.epochs
        )
    resumed_from = checkpoint.epoch

    def report(epoch: models.Epoch) -> None:
        figures = f"loss={epoch.loss:.4f} val_loss={epoch.val_loss:.4f} acc={epoch.acc:.4f}"
        log.info("epoch %s/%s %s", epoch.epoch, config.epochs, figures)
        job.progress(epoch.epoch, config.epochs, loss=round(epoch.loss, 5), acc=round(epoch.acc, 5))

    train_split, val_split = datasets.load_split(work, "train"), datasets.load_split(work, "val")
    checkpoint = models.fit_epochs(
        checkpoint,
        train_split,
        val_split,
        manifest["classes"],
        config.epochs,
        config.seed,
        lambda c: models.save_checkpoint(checkpoint_file, c),
        report,
        config.pace_s,
    )
    test = reports.evaluate(checkpoint.model, datasets.load_split(work, "test"), manifest["classes"])
    last = checkpoint.history[-1]
    metrics = {
        "model": config.model,
        "estimator": estimator,
        "dataset": config.dataset,
        "epochs": config.epochs,
        "accuracy": test["accuracy"],
        "val_accuracy": last.acc,
        "loss": last.loss,
        "val_loss": last.val_loss,
        "resumed_from_epoch": resumed_from,
        "job_id": job.id,
        "history": [vars(e) for e in checkpoint.history],
    }
    models.save_model(out / MODEL_FILE, checkpoint.model)
    datasets.write_atomic(out / METRICS_FILE, lambda tmp: tmp.write_text(json.dumps(metrics, indent=2)))
    log.info("test accuracy %.4f; model in %s", test["accuracy"], out)
    return TrainResult(
        **config.handover(),
        model_file=str(out / MODEL_FILE),
        metrics_file=str(out / METRICS_FILE),
        estimator=estimator,
        epochs=config.epochs,
        accuracy=test["accuracy"],
        val_accuracy=last.acc,
        loss=last.loss,
        resumed_from_epoch=resumed_from,
    )
