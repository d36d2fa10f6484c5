"""Request bodies: their media type, and reading them with a size cap (413 past it)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from trainq.inputs import documents
from trainq.inputs.limits import MAX_DOCUMENT_BYTES, WEB_BODY_MAX_BYTES

JSON_TYPE = "application/json"
#: How messages name a posted pipeline; it may be as large as a pipeline file.
DEFINITION = "the pipeline definition"
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


def content_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def refuse_past(size: int, max_bytes: int, what: str) -> None:
    """Answer 413 (Payload Too Large) if ``size`` bytes of ``what`` pass ``max_bytes``."""
    if size > max_bytes:
        raise HTTPException(413, f"{what} is larger than {max_bytes:,} bytes")


async def read_body(request: Request, what: str = "the body", max_bytes: int = WEB_BODY_MAX_BYTES) -> bytes:
    """The request body; 413 past ``max_bytes``, before the rest is read."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        refuse_past(size, max_bytes, what)
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
    return documents.parse(body, DEFINITION, fmt, MAX_DOCUMENT_BYTES)
