"""The stored limits: each key's policy and the fair queues, changed at runtime (``trainq limits set``,
``trainq limits fair``); a change takes effect at once (the parked jobs are looked at again)."""

from __future__ import annotations

from typing import Any

from trainq.broker.names import check_queue
from trainq.errors import InvalidInput
from trainq.job.limit import Policy, check_key, parse_policy
from trainq.sharing.admission import admit
from trainq.store.sharing import FairUse, KeyUse, get_sharing


def set_limit(key: str, changes: dict[str, Any]) -> Policy:
    """Change ``key``'s policy by ``changes`` (a None value clears that field); the policy now."""
    store = get_sharing()
    merged = {**(store.policy(check_key(key)) or {}), **changes}
    policy = parse_policy({k: v for k, v in merged.items() if v is not None})
    store.set_policy(key, policy.stored())
    admit([key])
    return policy


def delete_limit(key: str) -> None:
    """Forget ``key``'s policy: its jobs then start without limits. Raises InvalidInput if it had none."""
    if not get_sharing().delete_policy(check_key(key)):
        raise InvalidInput(f"no limit is set for key {key!r}; see `trainq limits list`")
    admit([key])


def key_uses() -> list[KeyUse]:
    """Every key with a policy or jobs: its policy, jobs holding slots and jobs parked."""
    return get_sharing().uses()


def set_fair(queue: str, window: int | None) -> None:
    """Make ``queue`` fair with ``window`` (None: the live capacity); its waiting jobs are looked at again."""
    get_sharing().set_fair(check_queue(queue), window)
    admit()


def delete_fair(queue: str) -> None:
    """Make ``queue`` plain again (its new jobs meet no gate). Raises InvalidInput if it was not fair."""
    if not get_sharing().delete_fair(check_queue(queue)):
        raise InvalidInput(f"queue {queue!r} is not fair; see `trainq limits list`")


def fair_uses() -> list[FairUse]:
    """Every fair queue: its window, live capacity and jobs in flight."""
    return get_sharing().fair_uses()
