"""A worker's acks ride with its next delivery's bookkeeping (``trainq.broker.transport.QoS``), and
the last ones go out while it idles: no unacked entry is left to come back as a second delivery."""

from __future__ import annotations

import redis

from tests.fixtures import Workers, wait_for
from trainq import JobState, get_registry
from trainq.ops.control import submit


def test_every_ack_is_sent_while_the_worker_runs_and_then_idles(
    workers: Workers, redis_client: redis.Redis
) -> None:
    # given a prefork worker of 2 processes
    workers.start("probe", concurrency=2)
    # when 30 jobs are sent and run
    ids = [submit("probe", {}) for _ in range(30)]
    wait_for(
        lambda: all(r.state is JobState.SUCCEEDED for r in get_registry().get_many(ids)),
        30,
        message="every job succeeded",
    )
    # then kombu's unacked entries are all gone soon after, the last acks sent by the idle flush
    wait_for(
        lambda: redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0,
        5,
        message=f"no unacked entry left: {redis_client.hkeys('unacked')}",
    )
