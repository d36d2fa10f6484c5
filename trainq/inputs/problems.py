"""How input problems are worded: pydantic's error messages as a user should read them."""

from __future__ import annotations

#: What pydantic puts before the words of a validator's own ``ValueError``.
VALUE_ERROR_PREFIX = "Value error, "


def validator_words(message: str) -> str:
    """A pydantic error message without the prefix pydantic puts before a validator's own words."""
    return message.removeprefix(VALUE_ERROR_PREFIX)
