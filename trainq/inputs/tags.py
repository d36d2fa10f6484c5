"""Tags a caller gives: ``key=value`` pairs (``trainq submit --tag``, the API's ``tag=``), and the
bounds on every job's tags, whatever its route: each tag names a registry index."""

from __future__ import annotations

from collections.abc import Iterable

from trainq.errors import InvalidInput
from trainq.inputs.documents import brief
from trainq.inputs.limits import MAX_TAGS, NAME_MAX_CHARS, TAG_VALUE_MAX_CHARS


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


def tags_problem(tags: object) -> str | None:
    """Why ``tags`` are too many or too long for a job (``MAX_TAGS``, ``NAME_MAX_CHARS`` a name,
    ``TAG_VALUE_MAX_CHARS`` a value), or None; their types are the record's to check."""
    if not isinstance(tags, dict):
        return None
    if len(tags) > MAX_TAGS:
        return f"{len(tags):,} tags: at most {MAX_TAGS}"
    for key, value in tags.items():
        if isinstance(key, str) and len(key) > NAME_MAX_CHARS:
            return f"tag name {brief(key)} is {len(key):,} characters; at most {NAME_MAX_CHARS}"
        if isinstance(value, str) and len(value) > TAG_VALUE_MAX_CHARS:
            return f"tag {brief(key)}: its value is {len(value):,} characters; at most {TAG_VALUE_MAX_CHARS}"
    return None
