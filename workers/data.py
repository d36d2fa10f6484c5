"""The ``data`` queue: prepare a bundled dataset as train/val/test arrays and a manifest.

Handlers here and in the other worker modules import scikit-learn code (``workers.datasets``,
``workers.models``, ``workers.reports``) only when they run: the CLI and each worker's main
process load these modules just to find the job types, and need no scikit-learn for that.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from trainq import Job, PermanentError, job_type
from trainq.settings import get_settings

log = logging.getLogger("workers.data")
Dataset = Literal["digits", "iris", "wine", "breast_cancer"]
OUTSIDE_WORK_AREA = (
    "must be inside TRAINQ_HOME/work: a relative path without '..', or an absolute one under it"
)


def work_area() -> Path:
    """Where these jobs read and write: ``<home>/work``, the only place a payload may point to."""
    return get_settings().home / "work"


def inside_work_area(value: str | None) -> str | None:
    """``value`` unchanged if it names a place inside the work area; else ValueError.

    A payload's path decides where a worker writes files and loads pickled models from, so any
    sender (HTTP, a pipeline, a bare Celery client) must not aim it elsewhere.
    """
    if value is None:
        return None
    path = Path(value).expanduser()
    area = work_area().resolve()
    if (not path.is_absolute() and ".." in path.parts) or not (area / path).resolve().is_relative_to(area):
        raise ValueError(OUTSIDE_WORK_AREA)
    return value


class DataConfig(BaseModel):
    """A bundled dataset and the work directory its splits go to.

    ``work_dir`` defaults to ``<home>/work/<dataset>``; a relative one is under ``<home>/work``,
    so a pipeline file can name one without knowing where trainq's home is; it never leaves it.
    """

    dataset: Dataset = "digits"
    work_dir: str | None = None

    _confined = field_validator("work_dir")(inside_work_area)

    def work_path(self) -> Path:
        """The work directory as an absolute path."""
        base = work_area()
        return base / self.dataset if self.work_dir is None else base / Path(self.work_dir).expanduser()

    def handover(self) -> dict[str, Any]:
        """What a result of this job hands the next step of a Celery chain: the dataset and its work dir."""
        return {"dataset": self.dataset, "work_dir": str(self.work_path())}


class PrepareConfig(DataConfig):
    """How to split: shares of validation and test rows, and the shuffle seed."""

    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    test_fraction: float = Field(default=0.15, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> PrepareConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% of rows for training")
        return self


class Handover(BaseModel):
    """The fields of a result that fill the next chain step's unset ones (``DataConfig.handover``), so
    ``chain(prepare.s(...), train.s(...), evaluate.s())`` works where the first step did."""

    dataset: Dataset
    work_dir: str


class PrepareResult(Handover):
    """Where the splits are, and how many rows each has."""

    manifest: str
    rows: dict[str, int]
    n_features: int
    classes: list[int]


def ensure_prepared(config: DataConfig) -> dict[str, Any]:
    """The work directory's manifest, preparing the dataset with default splits if it is missing.

    Raises PermanentError when the directory holds another dataset: a job would train or score on
    that one while reporting ``config.dataset`` (a chain step's inherited ``work_dir`` with its own
    ``dataset``, say).
    """
    from workers import datasets

    manifest = datasets.read_manifest(config.work_path())
    if manifest is None:
        log.info("no prepared data in %s; preparing %s", config.work_path(), config.dataset)
        manifest = datasets.prepare(config.dataset, config.work_path(), 0.15, 0.15, 0)
    elif manifest.get("dataset") != config.dataset:
        held = manifest.get("dataset")
        raise PermanentError(
            f"work_dir {config.work_path()} holds dataset {held!r}, not {config.dataset!r}: "
            f"give dataset {held!r}, or a work_dir of its own to {config.dataset!r}"
        )
    return manifest


@job_type("data", input=PrepareConfig, output=PrepareResult)
def prepare(job: Job, config: PrepareConfig) -> PrepareResult:
    """Load ``config.dataset``, split it, and write the arrays and manifest to the work directory."""
    from workers import datasets

    work = config.work_path()
    manifest = datasets.prepare(config.dataset, work, config.val_fraction, config.test_fraction, config.seed)
    rows = {split: info["rows"] for split, info in manifest["splits"].items()}
    log.info("prepared %s in %s: %s", config.dataset, work, rows)
    return PrepareResult(
        **config.handover(),
        manifest=str(work / datasets.MANIFEST),
        rows=rows,
        n_features=manifest["n_features"],
        classes=manifest["classes"],
    )
