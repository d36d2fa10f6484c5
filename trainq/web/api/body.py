"""Request bodies: their media type, and reading them with a size cap."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from trainq.errors import InvalidInput
from trainq.inputs import documents
from trainq.inputs.limits import WEB_BODY_MAX_BYTES

JSON_TYPE = "application/json"
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


def content_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request) -> bytes:
    """The request body, refused past ``WEB_BODY_MAX_BYTES``."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > WEB_BODY_MAX_BYTES:
            raise InvalidInput(f"request body over {WEB_BODY_MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    """The JSON body (``{}`` when empty); 415 for another media type, InvalidInput if it does not parse.

    Requiring ``application/json`` keeps another site's forms out: a browser cannot send it cross-site.
    """
    body = await read_body(request)
    if not body.strip():
        return {}
    if content_type(request) != JSON_TYPE:
        raise HTTPException(415, f"send the body as {JSON_TYPE}")
    return parse_json(body, "the body")


def parse_json(body: bytes, what: str) -> Any:
    """``body`` parsed as JSON, bounded as every document is; raises DocumentError naming ``what``."""
    return documents.parse(body, what, "json", WEB_BODY_MAX_BYTES)


def parse_definition(body: bytes, media_type: str) -> Any:
    """A pipeline definition from a request body: YAML for a YAML media type, else JSON."""
    fmt: documents.Format = "yaml" if media_type in YAML_TYPES else "json"
    return documents.parse(body, "the pipeline definition", fmt, WEB_BODY_MAX_BYTES)
