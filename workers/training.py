"""The ``training`` queue (placeholder until the ML handlers land)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from trainq import Job, job_type


class TrainConfig(BaseModel):
    """What to train, on what, for how long."""

    model: str = "sgd"
    dataset: str = "digits"
    epochs: int = Field(default=5, ge=1, le=1000)


@job_type("training", input=TrainConfig)
def train(job: Job, config: TrainConfig) -> dict[str, object]:
    """Train ``config.model`` on ``config.dataset``."""
    for epoch in range(1, config.epochs + 1):
        job.progress(epoch, config.epochs)
    return {"model": config.model, "epochs": config.epochs}
