"""Text a caller hands trainq: names (job names, limit keys) and strings that reach the OS.

A name is printed to terminals and pages and becomes part of Redis key names, so a control
character (ESC, BEL, a newline) in it could rewrite an operator's screen or break a table row.
A string that reaches the OS (a command, a directory, a glob, a variable's value) may not hold a
NUL character: C strings end there, so Python refuses it only when the job runs.
"""

from __future__ import annotations

from typing import Annotated, TypeGuard

from pydantic import AfterValidator

from trainq.errors import InvalidInput
from trainq.inputs.documents import brief


def is_printable(value: object, max_chars: int) -> TypeGuard[str]:
    """Whether ``value`` is a string of 1 to ``max_chars`` printable characters."""
    return isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable()


def check_printable(value: object, what: str, max_chars: int) -> str:
    """``value`` if it is 1 to ``max_chars`` printable characters; raises InvalidInput naming ``what``."""
    if not is_printable(value, max_chars):
        raise InvalidInput(f"{what} {brief(value)} must be 1 to {max_chars} printable characters")
    return value


def nul_problem(value: str) -> str | None:
    """Why ``value`` cannot reach the OS (it holds a NUL character), or None."""
    return "the value contains a NUL character" if "\0" in value else None


def _without_nul(value: str) -> str:
    if problem := nul_problem(value):
        raise ValueError(problem)
    return value


#: A pydantic field type for a string that reaches the OS (a command, a working directory).
OsText = Annotated[str, AfterValidator(_without_nul)]
