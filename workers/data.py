"""The ``data`` queue (placeholder until the ML handlers land)."""

from __future__ import annotations

from pydantic import BaseModel

from trainq import Job, job_type


class DataConfig(BaseModel):
    """Which dataset to prepare."""

    dataset: str = "digits"


@job_type("data", input=DataConfig)
def prepare(job: Job, config: DataConfig) -> dict[str, object]:
    """Prepare ``config.dataset``."""
    return {"dataset": config.dataset}
