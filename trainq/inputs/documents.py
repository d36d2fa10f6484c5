"""Documents: the JSON and YAML that callers hand trainq (pipeline files, ``--config``), read safely.

Every such document goes through here, so none can crash validation or make it slow: its size is
checked before it is parsed, its bytes must be UTF-8, its nesting depth and number literals are
bounded (checked in linear time before anything recursive runs), its strings must be text (JSON may
escape a lone surrogate, which nothing downstream can store: ``text_problem``), no mapping may give a
key twice (both parsers would keep the last silently: a second ``depends_on: []`` would undo the
first), and YAML is read by libyaml's C parser with aliases refused (ten lines of aliases expand to a
billion values). The bounds are named in ``trainq.inputs.limits``; each refusal is one
``DocumentError`` naming the document.
"""

from __future__ import annotations

import json
import os
import re
import reprlib
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml

from trainq.errors import DocumentError
from trainq.inputs.limits import MAX_DEPTH, MAX_MESSAGE_DEPTH, MAX_NUMBER_CHARS, MAX_READ_S, MAX_YAML_NODES

Format = Literal["json", "yaml"]

# A run this long may be a number literal past the limit; only then are numbers checked one by one.
_LONG_NUMBER = re.compile(rf"[-+0-9.eE]{{{MAX_NUMBER_CHARS + 1}}}")
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_OPENING = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSING = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
#: A JSON string, or one of the characters that shape a document (``_repeated_key`` walks these).
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[][{},:]')
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CHUNK_BYTES = 1 << 16

_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 60


def brief(value: Any) -> str:
    """A short repr of ``value`` for a message, whatever its size."""
    return _brief.repr(value)


def read_file(path: Path, what: str, max_bytes: int, fmt: Format | None = None) -> Any:
    """The value in a JSON (``.json``) or YAML file, or in ``fmt``; raises DocumentError.

    ``what`` names the document in messages ("pipeline file"); at most ``max_bytes`` are read. A pipe
    or FIFO (``<(cmd)``, ``/dev/stdin``) is read as a file is, within ``MAX_READ_S``.
    """
    named = f"{what} {path}"
    try:  # without O_NONBLOCK, opening a FIFO nobody writes to would wait for a writer forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DocumentError(f"cannot read {named}: {exc.strerror}") from None
    try:
        raw = read_stream(fd, named, max_bytes)
    finally:
        os.close(fd)
    return parse(raw, str(path), fmt or ("json" if path.suffix == ".json" else "yaml"), max_bytes)


def read_stream(fd: int, named: str, max_bytes: int) -> bytes:
    """Up to ``max_bytes + 1`` bytes of ``fd`` (a file, a pipe, standard input); raises DocumentError.

    Bytes are read only once ``poll`` says they wait, so a pipe whose writer is slow or absent is
    refused after ``MAX_READ_S`` instead of holding the caller; a regular file is always ready.
    """
    deadline, chunks, size = time.monotonic() + MAX_READ_S, [], 0
    ready = select.poll()
    ready.register(fd, select.POLLIN)
    try:
        while size <= max_bytes:
            if not ready.poll(max(0.0, deadline - time.monotonic()) * 1000):
                raise DocumentError(f"cannot read {named}: it did not end within {MAX_READ_S:g} s")
            chunk = os.read(fd, min(_CHUNK_BYTES, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise DocumentError(f"cannot read {named}: {exc.strerror}") from None
    return b"".join(chunks)


def parse(raw: str | bytes, source: str, fmt: Format, max_bytes: int) -> Any:
    """The value in ``raw`` (JSON or YAML text); ``source`` names it in messages."""
    if isinstance(raw, str):
        try:  # text from a command line may carry undecodable bytes as surrogates
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DocumentError(f"{source} is not UTF-8 (character {exc.start + 1})") from None
    if len(raw) > max_bytes:
        raise DocumentError(f"{source} is larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{source} is not UTF-8 (byte {exc.start + 1}: {raw[exc.start]:#04x})") from None
    return _json(text, source) if fmt == "json" else _yaml(text, source)


class _RepeatedKey(Exception):
    """Raised by ``_unique`` when a JSON object gives a key twice (found again with its line after)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; raises _RepeatedKey if a key comes twice."""
    mapping = dict(pairs)
    if len(mapping) < len(pairs):
        raise _RepeatedKey
    return mapping


def _repeated_key(text: str) -> tuple[str, int]:
    """The first key of valid JSON ``text`` given twice in one object, and its line (one linear pass)."""
    objects: list[set[str] | None] = []  # the keys of each open object; None for an open list
    expect_key = False
    for token in _JSON_TOKEN.finditer(text):
        mark = token.group()
        if mark in ("{", "["):
            objects.append(set() if mark == "{" else None)
            expect_key = mark == "{"
        elif mark in ("}", "]", ":"):
            if mark != ":":
                objects.pop()
            expect_key = False
        elif mark == ",":
            expect_key = objects[-1] is not None
        elif expect_key:
            keys, key = objects[-1], json.loads(mark)
            assert keys is not None
            if key in keys:
                return key, text.count("\n", 0, token.start()) + 1
            keys.add(key)
            expect_key = False
    raise AssertionError("_unique found a repeated key that is not in the text")


def _json(text: str, source: str) -> Any:
    hooks: dict[str, Callable[[str], Any]] = {"parse_constant": _constant(source)}
    if _LONG_NUMBER.search(text):
        number = _number_check(source)
        hooks.update(parse_int=number(int), parse_float=number(float))
    try:
        value = json.loads(text, object_pairs_hook=_unique, **hooks)  # type: ignore[arg-type]
    except _RepeatedKey:
        key, line = _repeated_key(text)
        raise DocumentError(f"{source}: duplicate key {brief(key)} (line {line})") from None
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # json's C decoder guards its own stack; far past MAX_DEPTH anyway
        value = None
    else:
        if _depth_within(value, MAX_DEPTH):
            if problem := text_problem(value):
                raise DocumentError(f"{source}: {problem}")
            return value
    raise DocumentError(f"{source} is nested deeper than {MAX_DEPTH} levels")


def nesting_problem(text: bytes) -> str | None:
    """Why JSON ``text`` (a broker message, its body) nests too deep for a worker, or None.

    Past ``MAX_MESSAGE_DEPTH``, decoding it or pickling it on its way to a pool process exhausts
    Python's stack in the worker's main process, which exits. Text with few brackets is not parsed.
    """
    if text.count(b"[") + text.count(b"{") <= MAX_MESSAGE_DEPTH:
        return None
    too_deep = f"nested deeper than {MAX_MESSAGE_DEPTH} levels"
    try:
        value = json.loads(text)
    except RecursionError:
        return too_deep
    except ValueError:
        return None  # not JSON: said by whoever reads it
    return None if _depth_within(value, MAX_MESSAGE_DEPTH) else too_deep


def text_problem(value: Any) -> str | None:
    """Which string or key in ``value`` (decoded JSON, a payload, a header) is not text, or None.

    JSON may escape a lone surrogate (``"\\ud800"``) and Python decodes it, but no UTF-8 encoder,
    Redis's Lua or pydantic's JSON reader takes one back: a record holding it could not be read.
    Encoded in C first (a 1,000-record payload: ~1 ms against ~4 ms walked); walked to name the place.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode()
        return None
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        pass  # not text somewhere, or not JSON (a Python caller's objects): walk it
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return f"{'.'.join(path) or 'the value'} is not valid text (lone surrogate)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not is_text(key):
                    return f"the name {brief(key)} is not valid text (lone surrogate)"
                stack.append((child, (*path, str(key))))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, (*path, str(index))) for index, child in enumerate(item))
    return None


def is_text(value: str) -> bool:
    """True if ``value`` encodes as UTF-8 (holds no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth_within(value: Any, limit: int) -> bool:
    """True if lists and mappings in ``value`` nest at most ``limit`` deep (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _number_check(source: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    def bounded(convert: Callable[[str], Any]) -> Callable[[str], Any]:
        def check(literal: str) -> Any:
            if len(literal) > MAX_NUMBER_CHARS:
                raise DocumentError(f"{source} has a number longer than {MAX_NUMBER_CHARS} characters")
            return convert(literal)

        return check

    return bounded


def _constant(source: str) -> Callable[[str], Any]:
    def refuse(name: str) -> Any:
        raise DocumentError(f"{source} is not valid JSON: {name} is not a JSON number")

    return refuse


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader, refusing a mapping that gives a key twice (``source`` names the document)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Check the mapping's own keys, then merge ``<<`` keys in as PyYAML does (they may be overridden)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key is refused by the constructor: not hashable
            key = "<<" if key_node.tag == _MERGE_TAG else self.construct_object(key_node)
            if key in seen:
                raise DocumentError(f"{self.source}: duplicate key {brief(key_node.value)}{_at(key_node)}")
            seen.add(key)
        super().flatten_mapping(node)


def _yaml(text: str, source: str) -> Any:
    try:
        _check_yaml_events(text, source)
        loader = _Loader(text, source)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise DocumentError(
            f"{source} is not valid YAML: {getattr(exc, 'problem', None) or exc}{where}"
        ) from None


def _check_yaml_events(text: str, source: str) -> None:
    """Walk the parser's events once, before any node is built: bound depth, values and numbers."""
    resolver = yaml.resolver.Resolver()
    depth = nodes = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, _CLOSING):
            depth -= 1
            continue
        if isinstance(event, yaml.AliasEvent):
            raise DocumentError(f"{source}: YAML aliases (*{event.anchor}) are not allowed{_at(event)}")
        if isinstance(event, _OPENING):
            depth += 1
            if depth > MAX_DEPTH:
                raise DocumentError(f"{source} is nested deeper than {MAX_DEPTH} levels{_at(event)}")
        elif isinstance(event, yaml.ScalarEvent):
            if len(event.value) > MAX_NUMBER_CHARS and _is_number(resolver, event):
                raise DocumentError(
                    f"{source} has a number longer than {MAX_NUMBER_CHARS} characters{_at(event)}"
                )
        else:
            continue
        nodes += 1
        if nodes > MAX_YAML_NODES:
            raise DocumentError(f"{source} has more than {MAX_YAML_NODES:,} values{_at(event)}")


def _is_number(resolver: yaml.resolver.Resolver, event: yaml.ScalarEvent) -> bool:
    tag = event.tag
    if tag in (None, "!"):
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    return tag in _NUMBER_TAGS


def _at(event: yaml.Event | yaml.Node) -> str:
    mark = event.start_mark
    return f" (line {mark.line + 1})" if mark else ""
