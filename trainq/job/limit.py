"""A job's ``limit`` option: the concurrency key it shares (a template over its payload and tags)
and the key's policy it brings (``max_running``, ``rate``, ``weight``, ``supersede``).

Checked and rendered when the job is built, so a bad template or value fails the caller before
anything is stored. The sharing gate (``trainq.sharing``) enforces it.
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainq.errors import InvalidInput
from trainq.inputs.documents import brief
from trainq.inputs.problems import validated, validator_words
from trainq.inputs.text import check_printable

#: Longest key template and longest rendered key, in characters (a key is part of Redis key names).
MAX_KEY_CHARS = 200
#: Largest ``max_running`` and ``weight`` a key may have.
MAX_RUNNING_MAX = 100_000
MAX_WEIGHT = 100
#: ``<count>/<unit>``: ``10/m`` is ten starts a minute.
RATE = re.compile(r"(\d{1,7}(?:\.\d{1,6})?)/([smhd])")
RATE_RULE = "use <count>/<unit> with unit s, m, h or d, e.g. 10/m"
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: A template field: a top-level payload field (``{model}``) or a tag (``{tags[project]}``).
_FIELD = re.compile(r"(?:tags\[([^\[\]{}]+)\]|([A-Za-z_][A-Za-z0-9_]*))")
_FIELD_RULE = "use {field} for a payload field or {tags[name]} for a tag"


def rate_per_s(rate: str) -> float:
    """Starts per second of a rate such as ``10/m``; raises InvalidInput."""
    match = RATE.fullmatch(rate)
    if not match or float(match.group(1)) <= 0:
        raise InvalidInput(f"rate {brief(rate)} is invalid: {RATE_RULE}")
    return float(match.group(1)) / _UNIT_S[match.group(2)]


class Policy(BaseModel):
    """What a concurrency key allows: at most ``max_running`` at once, ``rate`` starts, its share
    (``weight``) in the round-robin between keys, and whether a newer job supersedes older ones."""

    model_config = ConfigDict(extra="forbid")

    max_running: int | None = Field(default=None, ge=1, le=MAX_RUNNING_MAX)
    rate: str | None = None
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    supersede: Literal["cancel", "refuse"] | None = None

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                rate_per_s(value)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    def stored(self) -> dict[str, Any]:
        """The policy as the sharing store keeps it: fields at their default left out."""
        return self.model_dump(exclude_defaults=True)


class Limit(Policy):
    """A job's ``limit`` option: its key (a template until rendered) and the key's policy."""

    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)

    def policy(self) -> Policy:
        """The key's policy this job brings (recorded for the key unless one is set already)."""
        return Policy.model_validate(self.model_dump(exclude={"key"}))


PolicyT = TypeVar("PolicyT", bound=Policy)


def parse_limit(value: Any) -> Limit:
    """A ``limit`` option checked; raises InvalidInput naming the field."""
    return _checked(Limit, value)


def parse_policy(value: Any) -> Policy:
    """A key's policy checked; raises InvalidInput naming the field."""
    return _checked(Policy, value)


def _checked(model: type[PolicyT], value: Any) -> PolicyT:
    checked, errors = validated(model, value)
    if checked is None:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {validator_words(e['msg'])}" for e in errors
        )
        raise InvalidInput(f"limit: {problems}")
    return checked


def render_key(template: str, payload: dict[str, Any], tags: dict[str, str]) -> str:
    """The key ``template`` names for a job with ``payload`` and ``tags``; raises InvalidInput.

    Only plain fields are filled (no attributes, indexes but ``tags[...]``, conversions or formats).
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidInput(f"limit key {brief(template)} is invalid: {exc}") from None
    rendered = []
    for text, field, spec, conversion in parts:
        rendered.append(text)
        if field is None:
            continue
        match = _FIELD.fullmatch(field)
        if match is None or spec or conversion:
            raise InvalidInput(f"limit key {brief(template)}: field {brief(field)} is invalid: {_FIELD_RULE}")
        tag, name = match.groups()
        source, missing = (tags, f"no tag {brief(tag)}") if tag else (payload, f"no field {brief(name)}")
        value = source.get(tag or name)
        if not isinstance(value, (str, int, float)):
            raise InvalidInput(f"limit key {brief(template)}: the job has {missing} with a plain value")
        rendered.append(str(value))
    return check_key("".join(rendered))


def check_key(key: str) -> str:
    """``key`` if it is 1 to ``MAX_KEY_CHARS`` printable characters; raises InvalidInput."""
    return check_printable(key, "limit key", MAX_KEY_CHARS)


def rendered(value: Any, payload: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """A ``limit`` option as recorded on the job: checked, its key rendered, defaults left out."""
    limit = parse_limit(value)
    key = render_key(limit.key, payload, tags)
    return {"key": key, **limit.policy().stored()}
