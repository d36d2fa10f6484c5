"""Small scikit-learn models trained epoch by epoch with ``partial_fit``, checkpointed each epoch.

A model is a fitted ``Pipeline`` (``StandardScaler`` then the classifier), saved with joblib.
The checkpoint holds the model and the per-epoch history, so a killed run resumes after the
last epoch it finished instead of starting over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from workers.datasets import Split, write_atomic

CHECKPOINT = "checkpoint.joblib"


def build(estimator: str, seed: int, learning_rate: float) -> Pipeline:
    """An unfitted model: ``sgd`` (logistic regression by SGD) or ``mlp`` (one hidden layer of 64)."""
    classifier: SGDClassifier | MLPClassifier
    if estimator == "sgd":
        classifier = SGDClassifier(loss="log_loss", alpha=1e-4, learning_rate="optimal", random_state=seed)
    elif estimator == "mlp":
        classifier = MLPClassifier(
            hidden_layer_sizes=(64,), learning_rate_init=learning_rate, random_state=seed
        )
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    return Pipeline([("scale", StandardScaler()), ("classify", classifier)])


@dataclass
class Epoch:
    """What one epoch achieved: training loss, validation loss and validation accuracy."""

    epoch: int
    loss: float
    val_loss: float
    acc: float


@dataclass
class Checkpoint:
    """The model after ``history[-1].epoch`` epochs, and every epoch's figures."""

    model: Pipeline
    history: list[Epoch]

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before the first)."""
        return self.history[-1].epoch if self.history else 0


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically (a kill mid-write keeps the previous one)."""
    state = {"model": checkpoint.model, "history": [asdict(e) for e in checkpoint.history]}
    write_atomic(path, lambda tmp: joblib.dump(state, tmp))


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None if there is none."""
    if not path.exists():
        return None
    state = joblib.load(path)
    return Checkpoint(state["model"], [Epoch(**e) for e in state["history"]])


def fit_epochs(
    checkpoint: Checkpoint,
    train: Split,
    val: Split,
    classes: list[int],
    epochs: int,
    seed: int,
    save: Callable[[Checkpoint], None],
    on_epoch: Callable[[Epoch], None],
    pace_s: float = 0.0,
) -> Checkpoint:
    """Train from ``checkpoint.epoch + 1`` to ``epochs``, one ``partial_fit`` pass per epoch.

    Each finished epoch is saved with ``save`` before ``on_epoch`` reports it, so a reported
    epoch is never lost. ``pace_s`` stretches an epoch to at least that long (a toy dataset
    trains in milliseconds; the demo slows it down so its progress can be watched).
    """
    scaler, classifier = checkpoint.model.named_steps["scale"], checkpoint.model.named_steps["classify"]
    if checkpoint.epoch == 0:
        scaler.fit(train.X)
    train_X, val_X = scaler.transform(train.X), scaler.transform(val.X)
    for epoch in range(checkpoint.epoch + 1, epochs + 1):
        began = time.monotonic()
        order = np.random.default_rng(seed + epoch).permutation(len(train.y))
        classifier.partial_fit(train_X[order], train.y[order], classes=classes)
        figures = Epoch(
            epoch=epoch,
            loss=float(log_loss(train.y, classifier.predict_proba(train_X), labels=classes)),
            val_loss=float(log_loss(val.y, classifier.predict_proba(val_X), labels=classes)),
            acc=float(accuracy_score(val.y, classifier.predict(val_X))),
        )
        checkpoint.history.append(figures)
        save(checkpoint)
        on_epoch(figures)
        time.sleep(max(0.0, pace_s - (time.monotonic() - began)))
    return checkpoint


def save_model(path: Path, model: Pipeline) -> None:
    """Write the fitted model with joblib, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: joblib.dump(model, tmp))


def load_model(path: Path) -> Pipeline:
    """A model written by ``save_model``."""
    model: Pipeline = joblib.load(path)
    return model


def describe(model: Pipeline) -> dict[str, Any]:
    """The model's classifier class, classes and input width, for info files."""
    classifier = model.named_steps["classify"]
    return {
        "estimator": type(classifier).__name__,
        "classes": [int(c) for c in classifier.classes_],
        "n_features": int(model.named_steps["scale"].n_features_in_),
    }
