"""The Lua scripts the store runs, kept as ``.lua`` files beside this module and read once."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(*names: str) -> str:
    """The text of the scripts ``names`` (``lua/<name>.lua``), joined in order: shared helpers first."""
    folder = files("trainq.store") / "lua"
    return "\n".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in names)
