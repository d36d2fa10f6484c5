"""Tags a caller gives as ``key=value`` pairs: ``trainq submit --tag``, the API's ``tag=``."""

from __future__ import annotations

from collections.abc import Iterable

from trainq.errors import InvalidInput


def parse_tags(pairs: Iterable[str], what: str) -> dict[str, str]:
    """The tags in ``key=value`` ``pairs``; raises InvalidInput naming ``what`` (``--tag``) for a pair
    without a key, and for a key given twice, which would silently keep only its last value."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"bad {what} {pair!r}: use key=value")
        if key in tags:
            raise InvalidInput(f"{what} {key} given twice: a tag holds one value")
        tags[key] = value
    return tags
