"""A job's ``environment``: ``${VAR}`` references expanded on the worker, at run time only.

The registry keeps the unexpanded form; values that came from ``${VAR}`` are secrets and
are masked wherever the job's log, progress or result would show them. A reference to a
variable the worker does not set fails the job (``UnsetVariable``) unless it gives a default
(``${VAR:-default}``); ``$$`` is a literal ``$``. Not masked: the values of the ordinary
variables in ``NOT_SECRET`` (named by the job or by the worker), and values too short or too
common to be secrets (a GPU index ``1`` masked would blank every standalone 1 in the log).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from trainq.errors import UnsetVariable
from trainq.inputs.problems import not_a_string
from trainq.inputs.text import nul_problem

log = logging.getLogger("trainq.job.environment")

_REFERENCE = re.compile(r"\$\$|\$\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|\$(?P<bare>\w+)")
MASK = "***"
#: Environment variable names as POSIX defines them (``A=B`` would break the job at run time).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_RULE = "use letters, digits and '_', not starting with a digit"
#: Variables of ordinary values (``/root``, ``/usr/bin``, GPU indexes, thread counts): expanded,
#: never masked, whether the job's variable bears the name (``CUDA_VISIBLE_DEVICES: "${GPU_ID}"``)
#: or the worker's it references does (``"${HOME}/data"``).
NOT_SECRET = frozenset(
    {
        # the machine's own
        "HOME",
        "PATH",
        "USER",
        "LOGNAME",
        "PWD",
        "SHELL",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "HOSTNAME",
        "TERM",
        "TZ",
        # devices and threads
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        # runtimes and libraries
        "PYTHONUNBUFFERED",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "LD_LIBRARY_PATH",
        "CUDA_HOME",
        # distributed training (torchrun's)
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
    }
)
#: A referenced value shorter than this is not masked: it hides nothing anyone could not guess,
#: and masking ``1`` blanks every epoch, loss and step that reads 1 (CI tools draw the line at 4
#: characters, GitLab at 8).
MIN_SECRET_CHARS = 4
#: A referenced value that reads as a number needs one character more: ``1024`` or ``0.01`` is a
#: batch size or a rate far more often than a secret, while ``12345`` is masked.
MIN_NUMBER_SECRET_CHARS = 5
#: Referenced values too common to be secrets, in any case.
COMMON_VALUES = frozenset({"true", "false"})


def value_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a variable's value, else None. Only a string can: YAML and JSON read an
    unquoted ``1.10`` as 1.1, ``007`` as 7, ``0022`` as 18 and ``false`` as a boolean, and re-printing
    those would hand the job another value than the file shows."""
    return nul_problem(value) if isinstance(value, str) else not_a_string(value)


def expand(
    environment: Mapping[str, str], source: Mapping[str, str] | None = None, worker: str = "this worker"
) -> tuple[dict[str, str], list[str]]:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$VAR`` in each value from ``source`` (os.environ).

    Returns the expanded variables and the secret values (those that came from references, but for
    ordinary variables and values too short or too common: logged by name), longest first. Raises
    UnsetVariable, naming ``worker``, for a reference with no value or default.
    """
    source = os.environ if source is None else source
    secrets: set[str] = set()
    unmasked: dict[str, None] = {}  # "NAME: ${VAR}", once each, in order
    expanded = {}
    for name, value in environment.items():

        def lookup(match: re.Match[str], name: str = name) -> str:
            variable, default = match.group("braced") or match.group("bare"), match.group("default")
            if variable is None:
                return "$"  # ``$$``: a literal dollar sign
            found = source.get(variable)
            if default is not None and not found:
                return default
            if found is None:
                raise UnsetVariable(variable, name, worker)
            if found and variable not in NOT_SECRET and name not in NOT_SECRET:
                if _maskable(found):
                    secrets.add(found)
                else:
                    unmasked[f"{name}: ${{{variable}}}"] = None
            return found

        expanded[name] = _REFERENCE.sub(lookup, str(value))
    if unmasked:
        log.info("environment %s not masked: too short or too common to be a secret", ", ".join(unmasked))
    return expanded, sorted(secrets, key=len, reverse=True)


def _maskable(value: str) -> bool:
    """Whether a referenced ``value`` is long and rare enough to be a secret (see MIN_SECRET_CHARS)."""
    shown = value.strip()
    least = MIN_NUMBER_SECRET_CHARS if _number(shown) is not None else MIN_SECRET_CHARS
    return len(shown) >= least and shown.lower() not in COMMON_VALUES


@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """Whole-token occurrences of any of ``secrets``: not next to a letter or digit (``_`` and ``-``
    part tokens, so ``${TOKEN}_model.pt`` and a metric ``run_$TOKEN`` are masked too)."""
    return re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, secrets)) + r")(?![^\W_])")


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every whole-token occurrence of a secret value replaced by ``***``."""
    return _pattern(tuple(secrets)).sub(MASK, text) if secrets else text


def masked(value: Any, secrets: list[str]) -> Any:
    """A JSON-like ``value`` (metrics, a result) with secrets masked in every string and key.

    A number equal to a numeric secret (``tok=12345`` parsed as 12345.0) is masked too.
    """
    if not secrets:
        return value
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {masked(k, secrets): masked(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, secrets) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in _numbers(tuple(secrets)):
        return MASK
    return value


@lru_cache(maxsize=64)
def _numbers(secrets: tuple[str, ...]) -> frozenset[float]:
    """The secrets that read as finite numbers."""
    return frozenset(number for secret in secrets if (number := _number(secret)) is not None)


def _number(text: str) -> float | None:
    """``text`` read as a finite number (as a metric parsed from ``acc=12345`` would be), else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@contextmanager
def applied(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process's environment for the block, then restore it."""
    saved = {name: os.environ.get(name) for name in variables}
    try:  # a name the OS refuses stops the update midway: what it set is restored too
        os.environ.update(variables)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
