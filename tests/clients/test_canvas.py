"""Celery's canvas with trainq's job types: every member recorded, Celery and the registry agreeing."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, Signature, chain, chord, group
from celery.exceptions import ChordError
from celery.result import AsyncResult

from tests.clients.test_cli_console import trainq
from tests.fixtures import Workers, in_state, wait_for
from tests.jobs import probe
from trainq import JobRecord, JobState, get_registry
from trainq.errors import CommandFailed
from trainq.job.canvas import CANVAS_SOURCE
from trainq.job.clients import FOREIGN_SOURCE
from trainq.job.command import run_command
from trainq.ops.control import submit
from trainq.settings import get_settings
from workers.data import prepare
from workers.training import train

TIMEOUT_S = 60

#: A plain Celery client: trainq's task names and queues, none of its code (as another service holds).
client = Celery("client", broker=os.environ["TRAINQ_BROKER_URL"], backend=os.environ["TRAINQ_BROKER_URL"])


def plain_probe(**kwargs: Any) -> Signature:
    """The plain client's signature of a probe job with ``kwargs``."""
    return client.signature("trainq.probe", kwargs=kwargs, queue="probe")


def finished(job_id: str) -> JobRecord:
    """The record of ``job_id`` once it has finished (polled)."""
    registry = get_registry()
    return wait_for(
        lambda: (r := registry.find(job_id)) is not None and r.state.finished and r,
        TIMEOUT_S,
        message=f"job {job_id} finished",
    )


def running(job_id: str) -> None:
    """Wait until ``job_id`` is recorded running."""
    registry = get_registry()
    wait_for(lambda: (r := registry.find(job_id)) is not None and r.state is JobState.RUNNING, TIMEOUT_S)


def succeeded(result: AsyncResult) -> JobRecord:
    """Celery says SUCCESS for ``result`` and the registry says succeeded with the same result."""
    value = result.get(timeout=TIMEOUT_S)
    record = finished(result.id)
    assert result.state == "SUCCESS" and record.state is JobState.SUCCEEDED, record
    assert record.result == value
    return record


def test_chain_of_mutable_signatures_fills_the_child_from_its_parent(workers: Workers) -> None:
    # given data and training workers
    workers.start("data", "training", concurrency=1)
    # when a chain passes the data job's result to a training job (the example)
    result = chain(prepare.s(dataset="wine"), train.s(model="sgd", epochs=2)).delay()
    # then both jobs are recorded succeeded, as Celery says
    child = succeeded(result)
    parent = succeeded(result.parent)
    # and the training job got the prepared data's work_dir, and the whole result besides
    assert parent.result["work_dir"].endswith("wine")
    assert child.payload["work_dir"] == parent.result["work_dir"] and child.payload["epochs"] == 2
    assert child.parent_result == parent.result and child.tags == {"source": CANVAS_SOURCE}
    assert child.result["epochs"] == 2 and child.result["model_file"].startswith(parent.result["work_dir"])


def test_every_canvas_primitive_records_every_member(workers: Workers) -> None:
    # given a probe worker
    workers.start("probe", concurrency=2)
    fail = {"fail_times": 1, "permanent": True}
    link, errback = probe.s(), probe.si()
    link_id, errback_id = link.freeze().id, errback.freeze().id
    # when each primitive runs, with mutable and immutable signatures
    runs: dict[str, Any] = {
        "chain .s": chain(probe.s(), probe.s(seconds=0.1), probe.s()).delay(),
        "chain .si": chain(probe.si(), probe.si(seconds=0.1)).delay(),
        "group": group(probe.s(), probe.si(seconds=0.1)).delay(),
        "chord .s": chord([probe.s(), probe.s()], probe.s()).delay(),
        "chord .si": chord([probe.s(), probe.s()], probe.si(seconds=0.1)).delay(),
        "link": probe.apply_async(kwargs={}, link=link),
        "link_error": probe.apply_async(kwargs=fail, link_error=errback),
    }
    # then every member is recorded with the state and result Celery reports
    for result in (runs["chain .s"], runs["chain .s"].parent, runs["chain .s"].parent.parent):
        succeeded(result)
    assert finished(runs["chain .s"].id).parent_result == finished(runs["chain .s"].parent.id).result
    succeeded(runs["chain .si"])
    assert succeeded(runs["chain .si"].parent).parent_result is None
    for member in runs["group"].results:
        succeeded(member)
        # stored with its finish as Celery's backend stores a group member's result
        meta = member.backend.get_task_meta(member.id)
        assert meta["group_id"] == runs["group"].id and member.date_done is not None, meta
    # a chord's .s callback gets its members' results as a list; a .si callback gets none
    callback = succeeded(runs["chord .s"])
    assert callback.parent_result == [finished(r.id).result for r in runs["chord .s"].parent.results]
    assert callback.tags == {"source": CANVAS_SOURCE}
    assert succeeded(runs["chord .si"]).parent_result is None
    # link sends the child with the parent's result; link_error sends the errback after a failure
    parent = succeeded(runs["link"])
    assert succeeded(AsyncResult(link_id)).parent_result == parent.result
    with pytest.raises(Exception, match="permanent failure"):
        runs["link_error"].get(timeout=TIMEOUT_S)
    assert finished(runs["link_error"].id).state is JobState.FAILED
    errback = succeeded(AsyncResult(errback_id))
    assert errback.parent_result is None and errback.tags == {"source": CANVAS_SOURCE}


def test_a_step_that_cannot_be_built_fails_visibly(workers: Workers) -> None:
    # given a probe worker
    workers.start("probe", concurrency=2)
    # when a chain's second step has a payload its model refuses, and a third step follows
    result = chain(probe.s(), probe.s(seconds="soon"), probe.si()).delay()
    # then the chain's result raises the refusal, naming the field
    with pytest.raises(Exception, match="seconds: Input should be a valid number"):
        result.get(timeout=TIMEOUT_S)
    # and the first job is succeeded in both Celery and the registry
    first = result.parent.parent
    succeeded(first)
    # and the refused step is recorded failed with the reason, FAILURE in Celery
    refused = finished(result.parent.id)
    assert refused.state is JobState.FAILED
    assert "seconds: Input should be a valid number" in (refused.error or "")
    assert result.parent.state == "FAILURE" and refused.tags == {"source": CANVAS_SOURCE}
    # and the step after it never runs: Celery marks it failed, the registry blocked by the refusal
    after = get_registry().get(result.id)
    assert result.state == "FAILURE" and after.state is JobState.BLOCKED
    assert result.parent.id in (after.error or "")


def test_a_failed_chain_step_blocks_the_steps_after_it(workers: Workers) -> None:
    # given a probe worker
    workers.start("probe")
    # when a chain's first job fails for good
    result = chain(probe.s(fail_times=1, permanent=True), probe.si(seconds=0.1), probe.s()).delay()
    with pytest.raises(Exception, match="permanent failure"):
        result.get(timeout=TIMEOUT_S)
    # then it is failed in both, and the two steps Celery never sends are recorded blocked by it
    first = finished(result.parent.parent.id)
    assert first.state is JobState.FAILED and result.parent.parent.state == "FAILURE"
    for step in (result.parent, result):
        blocked = finished(step.id)
        assert blocked.state is JobState.BLOCKED and first.id in (blocked.error or "")
        assert step.state == "FAILURE"


def test_a_member_whose_pool_process_died_goes_on_with_its_canvas(workers: Workers) -> None:
    # given a probe worker, a chain whose first step's pool process dies on its first attempt (an OOM
    # kill), with an errback, and a chord with such a member
    workers.start("probe", concurrency=2)
    errback = probe.si(seconds=0)
    errback_id = errback.freeze().id
    chained = chain(probe.si(kill_times=1), probe.si(seconds=0.1)).apply_async(link_error=errback)
    chorded = chord([probe.si(kill_times=1), probe.si(seconds=0.1)], probe.si(seconds=0)).delay()
    # when the worker's process is replaced and the job recovered by trainq
    # then the canvas goes on: the chain's next step and the chord's callback run, both succeed
    succeeded(chained)
    succeeded(chorded)
    for lost in (chained.parent, *chorded.parent.results):
        record = finished(lost.id)
        assert record.state is JobState.SUCCEEDED and lost.state == "SUCCESS", record
    assert finished(chained.parent.id).recoveries == 1
    # and Celery never saw a failure: the errback was not sent
    assert get_registry().find(errback_id) is None


def test_a_chain_whose_whole_worker_died_goes_on_once_the_reaper_recovers_its_step(
    workers: Workers, redis_client: Any
) -> None:
    # given a probe worker running a chain's first step, which waits to be let go
    worker = workers.start("probe")
    release = f"release-{uuid.uuid4().hex}"
    chained = chain(probe.si(release_key=release), probe.si(seconds=0.1)).delay()
    first = chained.parent.id
    running(first)
    # when the whole worker is SIGKILLed mid-step and another one starts (no request left to re-send from)
    worker.kill()
    redis_client.set(release, 1)
    workers.start("probe")
    # then the reaper recovers the step, and the chain goes on: both steps succeed, the chain returns
    succeeded(chained)
    assert succeeded(chained.parent).recoveries == 1
    # and a dropped canvas job leaves nothing of its own behind, its kept canvas options neither
    keys = get_registry().keys
    assert redis_client.exists(keys.canvas(first))
    get_registry().delete(first)
    assert redis_client.keys(f"{keys.prefix}*{first}*") == []


def test_a_keyed_chain_step_parked_then_admitted_goes_on_with_its_chain(
    workers: Workers, redis_client: Any
) -> None:
    # given a key with one slot, held by a plain job that waits to be let go
    workers.start("probe", concurrency=2)
    limit, release = {"key": f"k-{uuid.uuid4().hex}", "max_running": 1}, f"release-{uuid.uuid4().hex}"
    holder = submit("probe", {"release_key": release}, limit=limit)
    running(holder)
    # when a chain's first step of that key is parked, then admitted once the slot is free
    chained = chain(probe.si().set(limit=limit), probe.si(seconds=0.1)).delay()
    wait_for(lambda: get_registry().find(chained.parent.id) is not None, TIMEOUT_S, message="step 1 recorded")
    assert get_registry().get(chained.parent.id).state is JobState.QUEUED
    redis_client.set(release, 1)
    # then the chain goes on: both steps succeed
    succeeded(chained.parent)
    succeeded(chained)
    # and the plain job kept nothing beside its record
    assert not redis_client.exists(get_registry().keys.canvas(holder))


def test_a_failed_command_in_a_chord_reads_its_exit_code_once(workers: Workers) -> None:
    # given a command worker
    workers.start("command", concurrency=2)
    # when a chord's member exits 4, with no retries
    failing = run_command.si(command="exit 4").set(retry={"max_retries": 0})
    failing_id = failing.freeze().id
    result = chord([failing, run_command.si(command="true")], run_command.si(command="true")).delay()
    # then the chord raises the member's error to the caller, and stores it, with the exit code once
    with pytest.raises(CommandFailed, match=r"^command exited with code 4$"):
        result.get(timeout=TIMEOUT_S)
    stored = wait_for(lambda: result.backend.get_task_meta(result.id)["result"], TIMEOUT_S)
    assert str(stored) == f"Dependency {failing_id} raised CommandFailed('command exited with code 4')"
    # and the member's own result raises CommandFailed with its message and exit code, as raised
    with pytest.raises(CommandFailed) as caught:
        AsyncResult(failing_id).get(timeout=TIMEOUT_S)
    assert str(caught.value) == "command exited with code 4" and caught.value.exit_code == 4


def test_a_failed_chord_member_blocks_its_callback(workers: Workers, tmp_path: Path) -> None:
    # given a probe worker
    workers.start("probe", concurrency=2)
    # when a chord's member fails for good, in a chord alone and in one a chain goes on after
    fail, ok = {"fail_times": 1, "permanent": True}, {"seconds": 0.1}
    chorded = chord([probe.si(**fail), probe.si(**ok)], probe.si()).delay()
    chained = chain(chord([probe.si(**fail), probe.si(**ok)], probe.si()), probe.si()).delay()
    # then Celery fails the callback (ChordError), and the registry records it blocked by the member
    wait_for(chorded.ready, TIMEOUT_S)
    assert isinstance(chorded.result, ChordError)
    member = chorded.parent.results[0].id
    assert finished(member).state is JobState.FAILED
    callback = finished(chorded.id)
    assert callback.state is JobState.BLOCKED and callback.error == f"a member of its chord failed: {member}"
    # and the id the caller holds is shown so
    shown = trainq(tmp_path, "show", chorded.id)
    assert shown.returncode == 0 and "blocked" in shown.stdout and member in shown.stdout, shown
    # and in the chain, the callback and the step after it are blocked too
    wait_for(chained.ready, TIMEOUT_S)
    assert isinstance(chained.parent.result, ChordError) and chained.state == "FAILURE"
    member = chained.parent.parent.results[0].id
    for step in (chained.parent, chained):
        blocked = finished(step.id)
        assert blocked.state is JobState.BLOCKED and member in (blocked.error or ""), blocked


@pytest.mark.parametrize(("length", "failing"), [(2, 0), (2, 1), (3, 1)], ids=["first", "last", "middle"])
def test_a_failed_step_of_a_chain_in_a_chord_blocks_the_callback(
    workers: Workers, tmp_path: Path, length: int, failing: int
) -> None:
    # given a probe worker
    workers.start("probe", concurrency=2)
    # when a chain in a chord's header fails for good at one of its steps
    fail = {"fail_times": 1, "permanent": True}
    steps = [probe.si(**(fail if i == failing else {})).set(task_id=uuid.uuid4().hex) for i in range(length)]
    result = chord([chain(*steps), probe.si(seconds=0.1)], probe.si()).delay()
    failed = steps[failing].id
    # then Celery's chord result is its own ChordError, and the step failed in both
    wait_for(result.ready, TIMEOUT_S, message="the chord errored")
    assert isinstance(result.result, ChordError), result.result
    assert finished(failed).state is JobState.FAILED and AsyncResult(failed).state == "FAILURE"
    # and the chain's later steps are recorded blocked by it
    for later in steps[failing + 1 :]:
        assert finished(later.id).error == f"an earlier chain step failed: {failed}"
    # and so is the chord's callback
    callback = finished(result.id)
    assert callback.state is JobState.BLOCKED and callback.error == f"a member of its chord failed: {failed}"
    # and the id the caller holds is shown so
    shown = trainq(tmp_path, "show", result.id)
    assert shown.returncode == 0 and "blocked" in shown.stdout and failed in shown.stdout, shown


def test_a_chain_goes_on_once_its_failed_step_is_retried(
    workers: Workers, tmp_path: Path, redis_client: Any
) -> None:
    # given a probe worker, and a plain client's chain whose first two steps fail while faults are present
    workers.start("probe")
    faults = [f"fault-{uuid.uuid4().hex}" for _ in range(2)]
    redis_client.set(faults[0], 1)
    redis_client.set(faults[1], 1)
    steps = plain_probe(fault_key=faults[0]), plain_probe(seconds=0.1, fault_key=faults[1]), plain_probe()
    last = chain(*steps).apply_async()
    first, middle = last.parent.parent.id, last.parent.id
    # and the first failed after its last retry, the steps after it recorded blocked
    assert in_state(first, JobState.DEAD, TIMEOUT_S).attempt == 4
    for step in (middle, last.id):
        assert in_state(step, JobState.BLOCKED, TIMEOUT_S).error == f"an earlier chain step failed: {first}"
    # when its fault is gone and it is retried from the shell
    redis_client.delete(faults[0])
    retried = trainq(tmp_path, "retry", first)
    assert retried.returncode == 0, retried
    # then the chain goes on to the middle step, which fails in turn: the last now names it
    in_state(middle, JobState.DEAD, TIMEOUT_S)
    blocker = f"an earlier chain step failed: {middle}"
    wait_for(lambda: get_registry().get(last.id).error == blocker, TIMEOUT_S, message="the last names it")
    # and once the middle step's fault is gone and it is retried, the chain runs to its end
    redis_client.delete(faults[1])
    assert trainq(tmp_path, "retry", middle).returncode == 0
    # each step once per retry, in order, with the result Celery passes it
    records = [in_state(step, JobState.SUCCEEDED, TIMEOUT_S) for step in (first, middle, last.id)]
    assert [r.attempt for r in records] == [1, 1, 1]
    assert records[1].parent_result == records[0].result and records[2].parent_result == records[1].result
    assert records[0].finished_at <= records[1].started_at and records[1].finished_at <= records[2].started_at
    events = get_registry().events(last.id)
    assert [e.state.value for e in events][-5:] == ["blocked", "blocked", "queued", "running", "succeeded"]
    assert events[-3].reason == f"its canvas went on: {middle} succeeded"
    # and the chain's result is the last step's value, for the client as for the registry
    assert client.AsyncResult(last.id).get(timeout=TIMEOUT_S) == records[2].result


def test_a_failed_chord_member_is_not_retried(workers: Workers, tmp_path: Path, redis_client: Any) -> None:
    # given a probe worker, and a plain client's chords whose member failed while a fault was present:
    # a member itself, and the first step of a chain that is a member
    workers.start("probe", concurrency=2)
    fault = f"fault-{uuid.uuid4().hex}"
    redis_client.set(fault, 1)
    member, step = (plain_probe(fault_key=fault).set(task_id=uuid.uuid4().hex) for _ in range(2))
    chorded = chord([member, plain_probe(seconds=0.1)], plain_probe()).apply_async()
    chained = chord([chain(step, plain_probe()), plain_probe()], plain_probe()).apply_async()
    for result in (chorded, chained):
        wait_for(result.ready, TIMEOUT_S, message="the chord errored")
    callback = in_state(chorded.id, JobState.BLOCKED, TIMEOUT_S)
    assert callback.error == f"a member of its chord failed: {member.id}"
    # when the fault is gone and each failed job is retried from the shell
    redis_client.delete(fault)
    for failed, result in ((member, chorded), (step, chained)):
        retried = trainq(tmp_path, "retry", failed.id)
        # then the retry is refused, naming the chord's callback and why
        assert retried.returncode == 2 and retried.stdout == "", retried
        assert retried.stderr == (
            f"error: job {failed.id} is a member of a chord that already counted it dead (callback "
            f"{result.id}); Celery counts each member of a chord once, so a retry could never run the "
            "callback: send the chord again\n"
        )
        # and nothing moved: the job stays dead, Celery's chord errored
        assert get_registry().get(failed.id).state is JobState.DEAD
        assert isinstance(client.AsyncResult(result.id).result, ChordError)
    assert get_registry().get(chorded.id).state is JobState.BLOCKED


def test_a_blocked_canvas_step_is_not_retried(workers: Workers, tmp_path: Path) -> None:
    # given a probe worker, and a plain client's chain and chord whose first job failed for good, the
    # chain's later steps and the chord's callback recorded blocked by it
    workers.start("probe", concurrency=2)
    fail = {"fail_times": 1, "permanent": True}
    chained = chain(plain_probe(**fail), plain_probe(), plain_probe()).apply_async()
    chorded = chord([plain_probe(**fail), plain_probe(seconds=0.1)], plain_probe()).apply_async()
    wait_for(chorded.ready, TIMEOUT_S, message="the chord errored")
    first, member = chained.parent.parent.id, chorded.parent.results[0].id
    refusals = {
        step: f"job {step} is a blocked chain step: retry the step that blocks it, {first} "
        "(its success continues the chain)"
        for step in (chained.parent.id, chained.id)
    }
    refusals[chorded.id] = (
        f"job {chorded.id} is blocked by {member}, a member of a chord that Celery counted already (it "
        "counts each member once): send the chord again; a retry would run it without the chord's results"
    )
    blocked = {step: in_state(step, JobState.BLOCKED, TIMEOUT_S) for step in refusals}
    # when each blocked job is retried from the shell
    for step, refusal in refusals.items():
        retried = trainq(tmp_path, "retry", step)
        # then the retry is refused in one line, naming the job to retry or what to do instead
        assert retried.returncode == 2 and retried.stdout == "", retried
        assert retried.stderr == f"error: {refusal}\n"
        # and nothing moved: the job stays blocked with the same history, Celery's result failed
        assert get_registry().get(step) == blocked[step]
        assert client.AsyncResult(step).state == "FAILURE"


def test_a_plain_clients_canvas_is_held_to_its_rules(workers: Workers, tmp_path: Path) -> None:
    # given probe and command workers, without TRAINQ_CLIENT_COMMANDS, and a server file a job could copy
    workers.start("probe", "command", concurrency=2)
    secret = tmp_path / "server" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for clients")

    def shell(case: str) -> Signature:
        """A plain client's command step that would leave a file named after ``case``."""
        return client.signature(
            "trainq.command", kwargs={"command": f"touch {tmp_path / case}"}, queue="command", immutable=True
        ).set(task_id=uuid.uuid4().hex)

    # when a plain client (no trainq) sends ordinary jobs carrying command steps in their canvas: the next
    # step of a chain, a link, a link_error of a job that fails, a chord's callback, the errback its worker's
    # main process sends after a hard time limit; and a chain step with trainq's file options
    steps = {case: shell(case) for case in ("chain", "link", "link_error", "chord", "timed_out")}
    chain(plain_probe(), steps["chain"]).apply_async()
    plain_probe().apply_async(link=steps["link"])
    plain_probe(fail_times=1, permanent=True).apply_async(link_error=steps["link_error"])
    chord([plain_probe(), plain_probe()], steps["chord"]).apply_async()
    once = {"trainq": {"retry": {"max_retries": 0}}}
    plain_probe(seconds=5).apply_async(time_limit=1, headers=once, link_error=steps["timed_out"])
    thief = plain_probe().set(task_id=uuid.uuid4().hex, cwd=str(secret.parent), result_files=["secret.txt"])
    chain(plain_probe(), thief).apply_async()
    # then each command step is refused as the client's own send would be: recorded failed with the
    # reason, FAILURE for Celery, and the command never ran
    for case, step in steps.items():
        record = finished(step.id)
        assert record.state is JobState.FAILED, (case, record)
        assert "command jobs from Celery clients without trainq" in (record.error or ""), (case, record)
        assert record.tags == {"source": FOREIGN_SOURCE}
        result = client.AsyncResult(step.id)
        wait_for(lambda: result.state == "FAILURE", TIMEOUT_S, message=case)  # noqa: B023 (called at once)
        assert not (tmp_path / case).exists(), case
    # and the step with file options is refused as those options in the client's header are: no copy
    record = finished(thief.id)
    assert record.state is JobState.FAILED and "unknown field 'cwd'" in (record.error or ""), record
    assert not record.artifacts and not (get_settings().artifacts_dir / "jobs" / thief.id).exists()
