"""trainq: ML jobs on Celery workers, with pipelines, retries, schedules and a registry."""

from trainq.celery import app
from trainq.errors import (
    BrokerUnavailable,
    InvalidInput,
    OutcomeUnknown,
    PayloadError,
    PermanentError,
    PipelineError,
    TrainqError,
)
from trainq.job import lifecycle
from trainq.job.artifacts import Artifacts
from trainq.job.context import Job
from trainq.job.record import JobRecord, JobState
from trainq.job.retry import RetryPolicy
from trainq.job.revocations import Revocations
from trainq.job.types import get_job_type, job_type
from trainq.ops.metrics import Metrics
from trainq.pipelines.pipeline import Pipeline, load_pipeline, run_pipeline_file
from trainq.pipelines.progress import RunProgress
from trainq.settings import Settings, get_settings
from trainq.sharing.plugin import Sharing
from trainq.store.registry import Registry, get_registry

#: What reacts to every job's lifecycle, in order, in every process (``trainq.job.lifecycle.Plugin``).
lifecycle.use(Artifacts(), RunProgress(), Metrics(), Sharing(), Revocations(app))

__all__ = [
    # Jobs
    "Job",
    "JobRecord",
    "JobState",
    "job_type",
    "get_job_type",
    "RetryPolicy",
    # Pipelines
    "Pipeline",
    "load_pipeline",
    "run_pipeline_file",
    # Registry
    "Registry",
    "get_registry",
    # Config
    "app",
    "Settings",
    "get_settings",
    # Errors
    "TrainqError",
    "InvalidInput",
    "PayloadError",
    "PermanentError",
    "PipelineError",
    "BrokerUnavailable",
    "OutcomeUnknown",
]
