"""The stored limits: each key's policy, changed at runtime (``trainq limits set``); a change takes
effect at once (the key's parked jobs are looked at again)."""

from __future__ import annotations

from typing import Any

from trainq.errors import InvalidInput
from trainq.job.limit import Policy, check_key, parse_policy
from trainq.sharing.admission import admit
from trainq.store.sharing import KeyUse, get_sharing


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
