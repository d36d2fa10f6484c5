"""The pipeline definition on its own: parsing, every validation problem, the graph and its picture."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from trainq.errors import InvalidInput, PipelineError
from trainq.inputs.limits import MAX_PIPELINE_JOBS
from trainq.pipelines.dag import PICTURE_MAX_DEPTH, Dag, load, parse, plan


def pipeline(*jobs: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline_id": "p", "jobs": list(jobs)}


def cmd(**fields: Any) -> dict[str, Any]:
    """Job ``a``, a command, with ``fields``."""
    return {"job_id": "a", "command": "x", **fields}


def problems(data: Any) -> list[str]:
    return parse(data)[2]


def test_a_valid_pipeline_has_no_problems() -> None:
    pipeline_id, jobs, found = parse(
        pipeline({"job_id": "a", "command": "true"}, {"job_id": "b", "type": "data", "depends_on": ["a"]})
    )
    assert (pipeline_id, [j.job_id for j in jobs], found) == ("p", ["a", "b"], [])


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([cmd(), cmd()], "job 'a': duplicate job id"),
        (
            [cmd(depends_on=["dowload"]), {"job_id": "download", "command": "y"}],
            "job 'a': depends on unknown job 'dowload' (did you mean 'download'?)",
        ),
        ([cmd(timeout="5 parsecs")], "job 'a': timeout: bad duration '5 parsecs'"),
        ([cmd(type="data")], "job 'a': has both command and type; give one"),
        ([{"job_id": "a"}], "job 'a': needs either command or type"),
        ([cmd(config={})], "job 'a': config applies only to a job with a type"),
        ([cmd(priority=12)], "job 'a': priority: Input should be less than or equal to 9"),
        ([cmd(retry_count=-1)], "job 'a': retry_count: Input should be greater than"),
        ([cmd(retries=3)], "job 'a': retries: Extra inputs are not permitted"),
        ([{"job_id": "a b", "command": "x"}], "job 'a b': job_id is invalid"),
        ([{"command": "x"}], "job #1: job_id: Field required"),
    ],
)
def test_each_problem_is_named_with_its_job(jobs: list[dict[str, Any]], expected: str) -> None:
    found = problems(pipeline(*jobs))
    assert any(p.startswith(expected) for p in found), found


def test_cycles_are_printed_along_the_dependencies() -> None:
    found = problems(
        pipeline(
            {"job_id": "a", "command": "x", "depends_on": ["b"]},
            {"job_id": "b", "command": "x", "depends_on": ["a"]},
            {"job_id": "c", "command": "x", "depends_on": ["c"]},
        )
    )
    assert found == ["dependency cycle: a -> b -> a", "dependency cycle: c -> c"]


def test_all_problems_are_reported_at_once() -> None:
    found = problems(
        {
            "pipeline_id": "bad id!",
            "extra": 1,
            "jobs": [
                {"job_id": "a", "command": "x", "depends_on": ["nope"]},
                {"job_id": "a", "command": "x"},
                {"job_id": "t", "command": "x", "timeout": "soon"},
            ],
        }
    )
    assert len(found) == 5, found


def test_one_jobs_field_problems_are_all_reported_together() -> None:
    # given a job with a priority out of range, a bad timeout, environment and result file
    job = cmd(priority=99, timeout="-1s", environment={"A=B": "x"}, result_files=["/abs"])
    # then each is named, not only the first pydantic finds
    found = problems(pipeline(job))
    named = {p.split(":")[1].strip() for p in found}
    assert named == {"priority", "timeout", "environment", "result_files"}, found


@pytest.mark.parametrize("data", [None, [], "text", {"pipeline_id": "p"}, {"pipeline_id": "p", "jobs": []}])
def test_a_file_that_is_not_a_pipeline_is_one_problem(data: Any) -> None:
    assert problems(data)


def test_plan_checks_types_and_configs_and_maps_options(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as caught:
        plan(
            pipeline(
                {"job_id": "t", "type": "training", "config": {"epochs": "many"}},
                {"job_id": "u", "type": "trainnig"},
            ),
            tmp_path,
        )
    assert caught.value.problems[0].startswith("job 't': invalid payload for job type 'training': epochs:")
    assert caught.value.problems[1].startswith("job 'u': unknown job type 'trainnig'; known types: command,")
    _, (job,) = plan(
        pipeline(
            {
                "job_id": "dl",
                "command": "echo hi",
                "retry_count": 3,
                "timeout": "15m",
                "priority": 0,
                "environment": {"K": "${SECRET}", "N": "1"},
                "result_files": ["out/*.json"],
                "queue": "io",
            }
        ),
        tmp_path,
    )
    assert (job.type, job.payload) == ("command", {"command": "echo hi", "cwd": str(tmp_path)})
    assert job.options == {
        "job_name": "dl",
        "tags": {"pipeline": "p"},
        "cwd": str(tmp_path),
        "retry": {"max_retries": 3},
        "environment": {"K": "${SECRET}", "N": "1"},
        "result_files": ["out/*.json"],
        "timeout": "15m",
        "queue": "io",
        "priority": 0,
    }


def test_malformed_files_are_one_clear_message(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"pipeline_id": "x",\n "jobs": [}')
    (tmp_path / "p.yaml").write_text("pipeline_id: x\njobs: [a\n")
    with pytest.raises(InvalidInput, match=r"p.json is not valid JSON: .* at line 2 column 11"):
        load(tmp_path / "p.json")
    with pytest.raises(InvalidInput, match=r"p.yaml is not valid YAML: .* at line 3"):
        load(tmp_path / "p.yaml")
    with pytest.raises(InvalidInput, match="cannot read pipeline file"):
        load(tmp_path / "missing.yaml")


def diamond() -> Dag:
    return Dag(
        {
            "data": [],
            "train": ["data"],
            "evaluate": ["train"],
            "detect": ["train"],
            "export": ["evaluate", "detect"],
            "other": [],
        }
    )


def test_graph_order_roots_and_dependants() -> None:
    dag = diamond()
    assert dag.roots() == ["data", "other"]
    assert dag.order() == ["data", "train", "evaluate", "detect", "export", "other"]
    assert dag.dependants()["train"] == ["evaluate", "detect"]


def test_order_of_a_deep_chain_does_not_recurse() -> None:
    chain = Dag({f"j{n}": [f"j{n - 1}"] if n else [] for n in range(5000)})
    assert chain.order()[-1] == "j4999"
    assert chain.cycles() == []
    assert len(chain.picture(str)) == 5000


def test_picture_of_the_documented_status_example_is_as_documented() -> None:
    # given docs/pipelines.md's status example; when drawn, then its lines are the documented ones
    graph = Dag({"root": [], "bad": ["root"], "child": ["bad"], "side": ["root"], "join": ["child", "side"]})
    assert graph.picture(str) == [
        "root",
        "├─▶ bad",
        "│   └─▶ child",
        "└─▶ side",
        "    └─▶ join  (also after child)",
    ]


def test_picture_of_a_long_chain_is_linear_in_its_jobs() -> None:
    # given a chain as long as a pipeline may be
    n = MAX_PIPELINE_JOBS
    chain = Dag({f"j{i}": [f"j{i - 1}"] if i else [] for i in range(n)})
    # when it is drawn
    started = time.perf_counter()
    lines = chain.picture(lambda job: f"{job} [command]")
    took = time.perf_counter() - started
    # then the drawing stays under 100 bytes a job, in bounded time, and deep jobs say their depth
    assert len(lines) == n
    assert len("\n".join(lines).encode()) < 100 * n
    assert took < 2.0
    assert lines[-1].endswith(f"j{n - 1} [command]  (depth {n - 1})")
    deepest_indented = " " * 4 * (PICTURE_MAX_DEPTH - 1) + f"└─▶ j{PICTURE_MAX_DEPTH} [command]"
    assert lines[PICTURE_MAX_DEPTH] == deepest_indented


def test_picture_places_each_job_once_and_names_other_dependencies() -> None:
    assert diamond().picture(str) == [
        "data",
        "└─▶ train",
        "    ├─▶ evaluate",
        "    └─▶ detect",
        "        └─▶ export  (also after evaluate)",
        "other",
    ]


def test_a_python_caller_s_environment_must_hold_strings() -> None:
    # given a pipeline built in Python whose job gives a number as a variable's value
    found = problems(pipeline(cmd(environment={"EPOCHS": 10, "NAME": "x"})))
    # then that variable alone is named, with what it was read as
    assert found == ["job 'a': environment.EPOCHS: read as the number 10, not a string; quote the value"]
