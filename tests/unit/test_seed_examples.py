"""The batch-queue system's example files (seed 004) as trainq reads them: ``queue_id``,
relative result files, and a clear way out for the absolute paths the originals used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fixtures import ROOT
from trainq.cli import main
from trainq.pipelines.dag import parse

SEEDS = sorted((ROOT / "examples" / "seeds").glob("*.json"))


def test_every_seed_example_is_here() -> None:
    assert [p.name for p in SEEDS] == [
        "etl-pipeline.json",
        "feature-extraction.json",
        "ml-pipeline.json",
        "simple-queue.json",
    ]


@pytest.mark.parametrize("path", SEEDS, ids=[p.stem for p in SEEDS])
def test_each_seed_example_validates(path: Path) -> None:
    # given a seed file as its users wrote it (queue_id, durations like "1h 30m", ${VAR} secrets)
    result = CliRunner().invoke(main, ["pipeline", "validate", str(path)])
    # then it validates and its DAG is drawn
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_queue_id_names_the_pipeline_but_not_beside_pipeline_id() -> None:
    job = {"job_id": "a", "command": "true"}
    assert parse({"queue_id": "q", "jobs": [job]})[0] == "q"
    assert (
        "give pipeline_id or queue_id, not both"
        in parse({"queue_id": "q", "pipeline_id": "p", "jobs": [job]})[2]
    )


def test_absolute_result_files_of_the_originals_say_how_to_write_them(tmp_path: Path) -> None:
    # given the ML example with its original absolute result_files (/data/raw/manifest.json, ...)
    data = json.loads((ROOT / "examples" / "seeds" / "ml-pipeline.json").read_text())
    for job in data["jobs"]:
        job["result_files"] = ["/" + f for f in job.get("result_files", [])]
    original = tmp_path / "ml-pipeline.json"
    original.write_text(json.dumps(data))
    # when validated, then each is refused with the relative form to write instead
    result = CliRunner().invoke(main, ["pipeline", "validate", str(original)])
    assert result.exit_code == 2
    assert (
        "job 'download': result_files: '/data/raw/manifest.json' is absolute; write it relative to the "
        "job's working directory (the pipeline file's directory), e.g. 'data/raw/manifest.json'"
    ) in result.output
    assert "'/models/checkpoints/' is absolute" in result.output
