"""The ``detection`` queue (placeholder until the ML handlers land)."""

from __future__ import annotations

from pydantic import BaseModel

from trainq import Job, job_type


class DetectConfig(BaseModel):
    """Which model to run over which inputs."""

    model: str = "sgd"
    inputs: str = "digits"


@job_type("detection", input=DetectConfig)
def detect(job: Job, config: DetectConfig) -> dict[str, object]:
    """Run ``config.model`` over ``config.inputs``."""
    return {"model": config.model}
