"""Input limits: every bound on what trainq accepts from a caller, as named constants.

Files, ``--config`` payloads, ids, names and messages are checked against these before any
work is done, so hostile or accidental input fails fast with exit 2 instead of eating time
or memory.
"""

from __future__ import annotations

#: Payload errors listed in one message; the rest are counted.
PAYLOAD_ERRORS_MAX = 20
#: Known field names compared with an unknown one when suggesting the closest.
CLOSE_MATCH_MAX_NAMES = 200
#: Characters of an unknown field name compared and shown.
FIELD_NAME_MAX_CHARS = 64
#: Largest request body trainq web reads (a pipeline definition, a payload), in bytes.
WEB_BODY_MAX_BYTES = 1_048_576
#: Most jobs or runs one page of a web listing returns.
WEB_PAGE_MAX = 500
#: Log lines a job page shows (its tail).
WEB_LOG_TAIL = 200
