"""Payloads: a job's input checked against its type's model, strictly, with errors that name the field.

Unknown fields are errors unless the job type opts out: ``job_type(..., extra="allow")`` wins,
then the model's own ``model_config["extra"]``, else ``forbid``. A misspelt field gets the
closest known name ("unknown field 'learningRate' — did you mean 'learning_rate'?"), so a typo
in a hyperparameter never runs the wrong experiment. A payload is at most ``MAX_CONFIG_BYTES`` as
JSON by every route, and a refused one past that is stored as a preview (``masked``).
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic_core import ErrorDetails, to_json

from trainq.errors import PayloadError
from trainq.inputs.documents import text_problem
from trainq.inputs.limits import (
    CLOSE_MATCH_MAX_NAMES,
    FIELD_NAME_MAX_CHARS,
    MAX_CONFIG_BYTES,
    PAYLOAD_ERRORS_MAX,
    REFUSED_PAYLOAD_KEPT_BYTES,
)
from trainq.inputs.problems import validated, validator_words

Extra = Literal["forbid", "ignore", "allow"]
MASK = "**********"


def extra_policy(model: type[BaseModel], override: Extra | None = None) -> Extra:
    """How ``model`` treats unknown fields: the job type's choice, the model's explicit one, else forbid."""
    explicit = model.model_config.get("extra")
    return override or explicit or "forbid"


def parse(model: type[BaseModel], payload: Any, job_type: str, extra: Extra) -> BaseModel:
    """``payload`` validated by ``model``; raises PayloadError naming each bad field."""
    if not isinstance(payload, dict):
        problem = f"(payload): expected an object of keyword arguments, got {payload!r:.80}"
        raise PayloadError(job_type, [problem])
    if (size := len(_json_of(payload))) > MAX_CONFIG_BYTES:
        problem = (
            f"(payload): it is {size:,} bytes as JSON, larger than the limit of {MAX_CONFIG_BYTES:,} bytes"
        )
        raise PayloadError(job_type, [problem])
    parsed, errors = validated(model, payload, extra=extra)
    if parsed is None:
        raise PayloadError(job_type, describe(errors, model))
    return parsed


def describe(errors: list[ErrorDetails], model: type[BaseModel]) -> list[str]:
    """One line per pydantic error (at most ``PAYLOAD_ERRORS_MAX``), unknown fields with a suggestion."""
    lines = []
    for error in errors[:PAYLOAD_ERRORS_MAX]:
        loc = [str(p) for p in error["loc"]]
        if error["type"] == "extra_forbidden" and loc:
            lines.append(unknown_field(loc, model))
        else:
            lines.append(f"{'.'.join(loc) or '(payload)'}: {validator_words(error['msg'])}")
    if len(errors) > PAYLOAD_ERRORS_MAX:
        lines.append(f"... and {len(errors) - PAYLOAD_ERRORS_MAX} more errors")
    return lines


def unknown_field(loc: list[str], model: type[BaseModel]) -> str:
    """ "unknown field 'a.b' — did you mean 'a.c'?" with the closest name the model at ``loc`` knows."""
    name = loc[-1][:FIELD_NAME_MAX_CHARS]
    path = ".".join([*loc[:-1], name])
    owner = _model_at(model, loc[:-1])
    match = closest(name, known_names(owner)) if owner else None
    if match is None:
        return f"unknown field {path!r}"
    return f"unknown field {path!r} — did you mean {'.'.join([*loc[:-1], match])!r}?"


def known_names(model: type[BaseModel]) -> list[str]:
    """The field names ``model`` accepts (aliases too), at most ``CLOSE_MATCH_MAX_NAMES``."""
    names: list[str] = []
    for name, field in model.model_fields.items():
        names.append(name)
        if isinstance(field.alias, str) and field.alias != name:
            names.append(field.alias)
    return names[:CLOSE_MATCH_MAX_NAMES]


def closest(name: str, known: list[str]) -> str | None:
    """The known name most like ``name``, ignoring case, ``_`` and ``-``; None if none is close."""
    folded = {_fold(k): k for k in known}
    matches = difflib.get_close_matches(_fold(name), list(folded), n=1, cutoff=0.6)
    return folded[matches[0]] if matches else None


def _fold(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The nested model at ``path`` of ``model``'s fields, or None when it is not a plain model field."""
    current = model
    for part in path:
        field = current.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        current = annotation
    return current


def fill_from_parent(model: type[BaseModel], kwargs: dict[str, Any], parent: Any) -> dict[str, Any]:
    """``kwargs`` plus the fields of a parent's dict result that ``model`` knows and the caller left unset."""
    if not isinstance(parent, dict):
        return kwargs
    known = set(model.model_fields)
    return {**{k: v for k, v in parent.items() if k in known}, **kwargs}


def masked(model: type[BaseModel], payload: Any) -> dict[str, Any]:
    """A payload that failed validation, as the registry may store it: secret fields masked, one that
    is not text (``text_problem``) kept as its repr, which is, and one past ``MAX_CONFIG_BYTES`` kept
    as the first ``REFUSED_PAYLOAD_KEPT_BYTES`` of its JSON with a note (never stored whole)."""
    if isinstance(payload, dict):
        secret = {name for name, field in model.model_fields.items() if _holds_secret(field.annotation)}
        shown: dict[str, Any] = {k: MASK if k in secret else v for k, v in payload.items()}
        if not text_problem(shown):
            return cut(shown, MAX_CONFIG_BYTES, REFUSED_PAYLOAD_KEPT_BYTES, "never stored whole")
        payload = shown
    return {"(payload)": repr(payload)[:FIELD_NAME_MAX_CHARS]}


def cut(payload: dict[str, Any], max_bytes: int, kept_bytes: int, whole: str) -> dict[str, Any]:
    """``payload`` if its JSON is at most ``max_bytes``, else its first ``kept_bytes`` as the text of a
    ``(payload)`` field, with a note of its size and of where it is ``whole``."""
    encoded = _json_of(payload)
    if len(encoded) <= max_bytes:
        return payload
    preview = encoded[:kept_bytes].decode("utf-8", "ignore")
    return {"(payload)": f"{preview}... (cut: {len(encoded):,} bytes as JSON in all; {whole})"}


def _json_of(payload: dict[str, Any]) -> bytes:
    """``payload`` as JSON, to measure it; a Python caller's other objects count as their repr."""
    try:
        return to_json(payload, fallback=repr)
    except ValueError:  # a circular or too deep value: pydantic refuses it, naming the place
        return b""


def _holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret(a) for a in getattr(annotation, "__args__", ()))
