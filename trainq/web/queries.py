"""What trainq web reads, shared by the API and the pages: the registry's and run store's own
queries, shaped as JSON, with every secret left out (payloads are stored masked; a schedule's
config is masked by ``trainq.schedules.info``, for the CLI too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Unpack
from urllib.parse import quote

from trainq import schedules
from trainq.errors import JobNotFound
from trainq.inputs.limits import WEB_LIST_PAYLOAD_MAX_BYTES
from trainq.job.payloads import cut
from trainq.job.record import JobRecord, eta_s
from trainq.pipelines.runs import RunStatus, get_runs
from trainq.settings import Settings
from trainq.store.registry import JobFilter, get_registry


def flower_link(settings: Settings, host: str, job_id: str) -> str:
    """The job's task page in Flower (``TRAINQ_FLOWER_URL``, else this host on the Flower port)."""
    base = settings.flower_url or f"http://{host}:{settings.flower_port}"
    return f"{base.rstrip('/')}/task/{quote(job_id, safe='')}"


def job_view(record: JobRecord) -> dict[str, Any]:
    """A job as the API shows it: the record, plus its ETA."""
    return {**record.model_dump(mode="json"), "eta_s": eta_s(record)}


def listed_job(record: JobRecord) -> dict[str, Any]:
    """A job as a listing shows it: ``job_view`` with a long payload cut to a preview."""
    whole = f"GET /api/v1/jobs/{record.id} has it whole"
    payload = cut(record.payload, WEB_LIST_PAYLOAD_MAX_BYTES, WEB_LIST_PAYLOAD_MAX_BYTES, whole)
    return {**job_view(record), "payload": payload}


def job_detail(job_id: str, settings: Settings, host: str) -> dict[str, Any]:
    """A job with its transitions and its Flower link, or a pipeline job that has not started as
    ``trainq show`` shows it (its step in the run and what holds it); raises JobNotFound."""
    registry = get_registry()
    record = registry.find(job_id)
    if record is None:
        return get_runs().unstarted(job_id).model_dump(mode="json")
    events = [e.model_dump(mode="json") for e in registry.events(job_id, record)]
    return {**job_view(record), "events": events, "flower_url": flower_link(settings, host, job_id)}


def list_jobs(
    *, limit: int = 50, offset: int = 0, **filters: Unpack[JobFilter]
) -> tuple[list[JobRecord], bool]:
    """A page of jobs newest first (``trainq list``'s filters), and whether another page follows."""
    records = get_registry().list(limit=limit + 1, offset=offset, **filters)
    return records[:limit], len(records) > limit


def check_job(job_id: str) -> None:
    """Raise JobNotFound unless ``job_id`` has a record or is a pipeline job that has not started."""
    if get_registry().find(job_id) is None and get_runs().owner(job_id) is None:
        raise JobNotFound(job_id)


def log_lines(job_id: str, after: str = "0-0", limit: int = 1000) -> list[dict[str, str]]:
    """Log lines after stream id ``after``, each ``{"id", "line"}`` (none before a pipeline job
    starts); raises JobNotFound."""
    registry = get_registry()
    check_job(job_id)
    return [{"id": entry, "line": line} for entry, line in registry.read_log(job_id, after, count=limit)]


def log_tail(job_id: str, lines: int) -> list[str]:
    """The last ``lines`` log lines of a job."""
    return [line for _, line in get_registry().log_tail(job_id, lines)]


def run_status(run_id: str, settings: Settings) -> RunStatus:
    """A run's status as ``trainq pipeline status`` shows it (finishing lost releases first).

    ``run_id`` may be a pipeline id, meaning its latest run, as the CLI takes it.
    """
    runs = get_runs()
    run_id = runs.find(run_id)
    status = runs.status(run_id)
    if not status.finished and runs.sweep(run_id, settings.lease_s):
        status = runs.status(run_id)
    return status


def recent_runs(limit: int) -> list[dict[str, Any]]:
    """The newest runs as ``trainq pipeline list --json`` shows them, with per-state job counts."""
    found = []
    for run in get_runs().recent(limit):
        counts: dict[str, int] = {}
        for job in run.jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        found.append(
            {**run.model_dump(mode="json", exclude={"jobs"}), "jobs": len(run.jobs), "steps": counts}
        )
    return found


def run_results(run_id: str, settings: Settings) -> list[dict[str, Any]]:
    """Each job's collected result files, as paths inside the artifact store (``run_id`` as above)."""
    runs = get_runs()
    status = runs.status(runs.find(run_id))
    root = settings.artifacts_dir
    return [
        {"job_id": job.job_id, "files": [_inside(Path(path), root) for path in job.artifacts]}
        for job in status.jobs
        if job.artifacts
    ]


def _inside(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def schedule_list() -> list[dict[str, Any]]:
    """Every schedule with its rule, target, last and next run; secret config fields masked."""
    return [schedules.info(entry).model_dump(mode="json") for entry in schedules.entries()]
