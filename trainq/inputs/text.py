"""Free text a caller names things with (job names, limit keys): printable characters only.

Such text is printed to terminals and pages and becomes part of Redis key names, so a control
character (ESC, BEL, a newline) in it could rewrite an operator's screen or break a table row.
"""

from __future__ import annotations

from typing import TypeGuard

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
