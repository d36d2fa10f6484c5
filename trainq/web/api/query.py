"""Query parameters: an API route refuses any it does not declare, so a misspelled option
(``validate`` for ``validate_only``) is a 422 naming the one meant, never silently ignored."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant

from trainq.errors import UnknownQueryParameter
from trainq.inputs.limits import FIELD_NAME_MAX_CHARS, PAYLOAD_ERRORS_MAX
from trainq.job.payloads import closest


def known_query(request: Request) -> None:
    """Refuse the request when its query holds a parameter its route does not declare."""
    declared = declared_query(request.scope["route"].dependant)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if not unknown:
        return
    problems = [
        _unknown(name[:FIELD_NAME_MAX_CHARS], sorted(declared)) for name in unknown[:PAYLOAD_ERRORS_MAX]
    ]
    if len(unknown) > PAYLOAD_ERRORS_MAX:
        problems.append(f"and {len(unknown) - PAYLOAD_ERRORS_MAX} more unknown query parameters")
    raise UnknownQueryParameter(problems)


def declared_query(dependant: Dependant) -> set[str]:
    """The query parameter names ``dependant`` and its dependencies declare."""
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= declared_query(dependency)
    return names


def _unknown(name: str, declared: list[str]) -> str:
    match = closest(name, declared)
    hint = f"; did you mean {match!r}?" if match else ""
    return f"unknown query parameter {name!r}{hint}"
