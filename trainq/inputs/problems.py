"""How input problems are worded: pydantic's error messages as a user should read them.

A value of the wrong type says what YAML or JSON read it as (``the number 1.1``, ``the boolean
false``), since the file shows other text (``1.10``, ``no``). A boolean is never taken as a number,
as pydantic's lax mode would (``retry_count: yes`` as one retry, ``{"epochs": true}`` as one epoch).
"""

from __future__ import annotations

import datetime
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails as Error

from trainq.inputs.documents import brief

#: What pydantic puts before the words of a validator's own ``ValueError``.
VALUE_ERROR_PREFIX = "Value error, "
#: pydantic's errors for text a number field cannot read (a boolean's, below), and what it expects.
_NUMBER_ERRORS = {"int_parsing": "an integer", "float_parsing": "a number", "decimal_parsing": "a number"}

Model = TypeVar("Model", bound=BaseModel)
Loc = tuple[int | str, ...]


def validator_words(message: str) -> str:
    """A pydantic error message without the prefix pydantic puts before a validator's own words."""
    return message.removeprefix(VALUE_ERROR_PREFIX)


def read_as(value: Any) -> str:
    """What a YAML or JSON reader made of ``value``, in words: ``the number 1.1``, ``the boolean false``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        return f"the text {brief(value)}"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "a value"


def not_a_string(value: Any) -> str | None:
    """Why ``value`` is not the string a field wants (what it was read as, and the fix), or None."""
    return None if isinstance(value, str) else f"read as {read_as(value)}, not a string; quote the value"


def validated(model: type[Model], data: Any, **options: Any) -> tuple[Model | None, list[Error]]:
    """``data`` validated by ``model`` (``options`` as ``model_validate`` takes them), or None and every
    error, each boolean a number field would take among them."""
    try:
        result: Model | None = model.model_validate(data, **options)
        errors: list[Error] = []
    except ValidationError as exc:
        result, errors = None, exc.errors()
    numbers = _booleans_as_numbers(model, data, options)
    if numbers:
        result, errors = None, [*(e for e in errors if e["loc"] not in numbers), *numbers.values()]
    return result, errors


def _booleans_as_numbers(model: type[BaseModel], data: Any, options: dict[str, Any]) -> dict[Loc, Error]:
    """Each place where ``model`` would read a boolean of ``data`` as a number, with its error: found by
    validating again with each boolean as its text, which a number field refuses and a boolean takes."""
    as_text = _booleans_as_text(data)
    if as_text is data:
        return {}  # no boolean in it
    try:
        model.model_validate(as_text, **options)
        return {}
    except ValidationError as exc:
        errors = exc.errors()
    except Exception:  # a model's own validator that fails on the altered values (a path '~x'): nothing found
        return {}
    found: dict[Loc, Error] = {}
    for error in errors:
        value = _at(data, error["loc"])
        if error["type"] in _NUMBER_ERRORS and isinstance(value, bool):
            words = f"expected {_NUMBER_ERRORS[error['type']]}, got {read_as(value)}"
            found[error["loc"]] = Error(type="bool_as_number", loc=error["loc"], msg=words, input=value)
    return found


def _booleans_as_text(value: Any) -> Any:
    """``value`` (JSON-like) with each boolean as the text ``true`` or ``false``; itself if it holds none."""
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        changed = {key: _booleans_as_text(item) for key, item in value.items()}
        return changed if any(changed[key] is not item for key, item in value.items()) else value
    if isinstance(value, list):
        items = [_booleans_as_text(item) for item in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    return value


def _at(value: Any, loc: Loc) -> Any:
    """The item of ``value`` at an error's ``loc``, or None where it leads nowhere (a union's branch)."""
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value
