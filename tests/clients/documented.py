"""The ``trainq`` and ``celery`` command lines the documentation and the deploy files give users.

Read from the code blocks of README.md, docs/*.md and deploy/README.md (``\\`` continuations
joined, ``# comments`` and a leading ``$`` dropped, ``a && b`` split), the units' ``ExecStart=``
lines, the compose file's ``command:`` and health checks, the Kubernetes containers' commands
and probes, and the Dockerfile's ``CMD``. A synopsis line expands to the commands it stands for:
``disable|enable NAME`` to one per word, ``cancel RUN | list`` to one per alternative, and
``[--watch]`` to a command with and one without the option.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from celery.bin.base import CLIContext
from celery.bin.celery import celery

from tests.fixtures import ROOT
from trainq.celery import app
from trainq.cli import main

PROGRAMS = {"trainq": main, "celery": celery}
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]
DEPLOY = ROOT / "deploy"
#: Where the systemd units expect trainq installed.
UNIT_BIN = "/opt/trainq/venv/bin/"
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
ALTERNATIVES = re.compile(r"^[\w-]+(\|[\w-]+)+$")


@dataclass(frozen=True)
class Documented:
    """One command line as a user reads it, and where."""

    where: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    output: str = ""  # what the docs show it printing, if anything
    kind: str = "docs"  # docs, systemd, compose, k8s, docker

    @property
    def line(self) -> str:
        assignments = [f"{k}={v}" for k, v in self.env]
        return shlex.join([*assignments, *self.argv])

    def with_values(self, values: dict[str, str]) -> Documented:
        """This command with each placeholder word (``JOB``, ``<queue>``...) replaced from ``values``."""
        argv = tuple(_fill(word, values) for word in self.argv)
        return Documented(self.where, argv, self.env, self.output, self.kind)


def _fill(word: str, values: dict[str, str]) -> str:
    if word in values:
        return values[word]
    for placeholder, value in values.items():
        if placeholder.startswith(("<", "$", "%")):  # also inside a word: data@<queue>, -n %i@%h
            word = word.replace(placeholder, value)
    return word


def commands() -> list[Documented]:
    """Every documented command, in the order the files give them."""
    found = [*markdown_commands(), *unit_commands(), *compose_commands(), *k8s_commands()]
    return [*found, *dockerfile_commands()]


def markdown_commands() -> Iterator[Documented]:
    for path in MARKDOWN:
        yield from _markdown(path)


def _markdown(path: Path) -> Iterator[Documented]:
    fenced, pending, start = False, "", 0
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = pending + line, ""
        console = text.lstrip().startswith("$ ")
        output = _shown_output(lines, number) if console else ""
        yield from parse_line(f"{path.relative_to(ROOT)}:{start}", text.strip().removeprefix("$ "), output)


def _shown_output(lines: list[str], number: int) -> str:
    """The lines after a ``$ command`` in a console block, up to the next command or the fence."""
    shown = []
    for line in lines[number:]:
        if line.startswith(("$ ", "```")):
            break
        shown.append(line)
    return "\n".join(shown).strip()


def parse_line(where: str, text: str, output: str = "", kind: str = "docs") -> Iterator[Documented]:
    """The trainq/celery commands of one shell line, synopses expanded."""
    text = text.replace("<job id>", "JOB")
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return
    for part in _split(words, "&&"):
        env = []
        while part and ASSIGNMENT.match(part[0]):
            name, _, value = part.pop(0).partition("=")
            env.append((name, value))
        if part and part[-1] == "&":
            part.pop()
        if part and part[0] in PROGRAMS:
            for argv in expand(part):
                yield Documented(where, tuple(argv), tuple(env), output, kind)


def _split(words: list[str], separator: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word == separator:
            parts.append([])
        else:
            parts[-1].append(word)
    return parts


def expand(words: list[str]) -> Iterator[list[str]]:
    """The commands a synopsis stands for (see the module docstring)."""
    first, *others = _split(words, "|")
    prefix = first[: _group_depth(first)]
    for alternative in [first, *(prefix + other for other in others)]:
        choice = next((i for i, w in enumerate(alternative) if ALTERNATIVES.match(w)), None)
        variants = [alternative]
        if choice is not None:
            words = alternative[choice].split("|")
            variants = [[*alternative[:choice], w, *alternative[choice + 1 :]] for w in words]
        for variant in variants:
            optional = [w for w in variant if w.startswith("[") and w.endswith("]")]
            yield [w for w in variant if w not in optional]
            if optional:
                yield [w.strip("[]") for w in variant]


def _group_depth(words: list[str]) -> int:
    """How many leading words name the program and its groups (``trainq pipeline`` -> 2)."""
    command: click.Command = PROGRAMS[words[0]]
    depth = 1
    for word in words[1:]:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command, depth = command.commands[word], depth + 1
    return depth - 1 if not isinstance(command, click.Group) else depth


def unit_commands() -> Iterator[Documented]:
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for number, line in enumerate(unit.read_text().splitlines(), 1):
            if line.startswith("ExecStart="):
                text = line.removeprefix("ExecStart=").replace(UNIT_BIN, "")
                yield from parse_line(f"{unit.relative_to(ROOT)}:{number}", text, kind="systemd")


def compose_commands() -> Iterator[Documented]:
    path = DEPLOY / "docker-compose.yml"
    for name, service in yaml.safe_load(path.read_text())["services"].items():
        where = f"{path.relative_to(ROOT)}:{name}"
        lines = [service.get("command"), (service.get("healthcheck") or {}).get("test")]
        for line in lines:
            yield from parse_line(where, _shell_text(line).replace("$$", "$"), kind="compose")


def k8s_commands() -> Iterator[Documented]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc.get("spec") or {}).get("template", {}).get("spec", {})
            for container in spec.get("containers", []):
                where = f"{path.relative_to(ROOT)}:{container['name']}"
                probes = [container.get(p, {}).get("exec", {}).get("command") for p in _PROBES]
                for line in [[*container.get("command", []), *container.get("args", [])], *probes]:
                    yield from parse_line(where, _shell_text(line), kind="k8s")


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def dockerfile_commands() -> Iterator[Documented]:
    path = DEPLOY / "Dockerfile"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("CMD "):
            where = f"{path.relative_to(ROOT)}:{number}"
            yield from parse_line(where, _shell_text(json.loads(line.removeprefix("CMD "))), kind="docker")


def _shell_text(command: Any) -> str:
    """A compose/k8s command (a string, an argv, or ``sh -c``/``CMD-SHELL`` + a string) as shell text."""
    if not command:
        return ""
    if isinstance(command, str):
        return command
    if command[0] in ("sh", "CMD-SHELL"):
        return str(command[-1])
    return shlex.join(command)


def parse(argv: tuple[str, ...] | list[str]) -> click.Context:
    """Parse ``argv`` as its program would, down to the last subcommand; raises click's errors."""
    command = PROGRAMS[argv[0]]
    context = command.make_context(argv[0], list(argv[1:]))
    if command is celery:  # what celery's group callback gives its subcommands (their option types use it)
        context.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(context, [*context._protected_args, *context.args])
        assert sub is not None and name is not None
        command, context = sub, sub.make_context(name, rest, parent=context)
    return context


@dataclass(frozen=True)
class Mention:
    """A command named in running text (an inline code span): a verb and options, maybe a synopsis."""

    where: str
    text: str

    @property
    def words(self) -> list[str]:
        words = self.text.split()
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        return words


def mentions() -> Iterator[Mention]:
    """Inline code spans of the Markdown files that start with ``trainq`` or ``celery``."""
    for path in MARKDOWN:
        fenced = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            for span in re.findall(r"`([^`]+)`", line):
                mention = Mention(f"{path.relative_to(ROOT)}:{number}", span)
                if mention.words[:1] and mention.words[0] in PROGRAMS:
                    yield mention


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The deepest command ``words`` name (options skipped), and the words that name it."""
    command: click.Command = PROGRAMS[words[0]]
    path = [words[0]]
    rest = iter(words[1:])
    for word in rest:
        if word == "-A":  # celery's app option and its value
            next(rest, None)
        elif isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
            path.append(word)
        elif not word.startswith("-"):
            break
    return command, path


def long_options(text: str) -> set[str]:
    """The ``--options`` a span names (before a ``--`` that hands the rest to another program)."""
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text.split(" -- ")[0]))
