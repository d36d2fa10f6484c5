"""Input limits: every bound on what trainq accepts from a caller, as named constants.

Files, ``--config`` payloads, ids, names and messages are checked against these before any
work is done, so hostile or accidental input fails fast with exit 2 instead of eating time
or memory.
"""

from __future__ import annotations

#: Longest queue or job type name: it is part of broker keys, task names and index keys.
NAME_MAX_CHARS = 64

#: Messages kept in the quarantine; the oldest go first past this.
QUARANTINE_MAX_MESSAGES = 1_000
#: Bytes of a set-aside message kept for inspection; the rest is cut off.
QUARANTINE_MAX_BYTES = 16 * 1024
