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
#: Most retries a caller may ask for in words (``--retries``, a pipeline's ``retry_count``, the API's
#: ``retries``); a Python caller's ``RetryPolicy`` may give more.
MAX_RETRIES = 1000
#: Longest job id: it names a directory (a job's checkpoints, its artifacts).
JOB_ID_MAX_CHARS = 255
#: Longest pipeline id and pipeline job id: a pipeline job's id joins both, and a run's suffix.
PIPELINE_ID_MAX_CHARS = 100
#: Longest job name: free text, printed in listings (printable characters only).
JOB_NAME_MAX_CHARS = 200
#: Largest request body trainq web reads (a payload, a schedule), in bytes; a pipeline definition may
#: be as large as a pipeline file (``MAX_DOCUMENT_BYTES``). Past it the answer is 413.
WEB_BODY_MAX_BYTES = 1_048_576
#: Most jobs or runs one page of a web listing returns.
WEB_PAGE_MAX = 500
#: Most bytes of a payload's JSON each job of a web listing shows; past it, that many as a preview
#: (the job's own answer has it whole), so a page of ``WEB_PAGE_MAX`` jobs stays a few MB.
WEB_LIST_PAYLOAD_MAX_BYTES = 16 * 1024
#: Most jobs one ``trainq list`` or ``trainq dead`` shows.
LIST_MAX = 100_000
#: Farthest a listing may start (``--offset``, ``offset=``): past any registry, within Redis's integers.
LIST_OFFSET_MAX = 1_000_000_000
#: Most characters of one value (a payload, a result, an error) ``trainq show`` prints; ``--json``
#: prints it whole. A terminal's line wrapping costs far more than linear time on a long value.
SHOW_VALUE_MAX_CHARS = 4000
#: Log lines a job page shows (its tail).
WEB_LOG_TAIL = 200
#: Largest pipeline file trainq reads (JSON or YAML).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
#: Longest wait for a pipeline file from a pipe or FIFO (``<(cmd)``, ``-``) to end: a FIFO nobody
#: writes to is refused then, as a file too large is, instead of waiting forever.
MAX_READ_S = 1.0
#: Largest payload, as JSON, by every route: ``--config`` (inline or ``@file``), Python, the API, a
#: Celery client's message (it travels in the broker message and is stored in the job's record).
MAX_CONFIG_BYTES = 1024 * 1024
#: Most bytes of a refused payload's JSON its record keeps (a preview, cut with a note): a message
#: past every limit must not be stored whole, nor make each later read of its record slow.
REFUSED_PAYLOAD_KEPT_BYTES = 4096
#: Most tags on one job, and the longest tag value: each tag names a registry index.
MAX_TAGS = 64
TAG_VALUE_MAX_CHARS = 256
#: Deepest nesting of lists and mappings in any document or payload.
MAX_DEPTH = 32
#: Deepest nesting in a broker message's envelope or body: a payload's, plus Celery's own (canvas, headers).
MAX_MESSAGE_DEPTH = 2 * MAX_DEPTH
#: Most values (scalars, lists, mappings) in one YAML document; its parser costs ~10 us a value.
MAX_YAML_NODES = 100_000
#: Longest number literal, in characters (Python refuses integers past 4,300 digits).
MAX_NUMBER_CHARS = 100
#: Most jobs in one pipeline.
MAX_PIPELINE_JOBS = 10_000
#: Most problems one validation prints; the rest are counted.
MAX_REPORTED_PROBLEMS = 50
#: Unknown names that get a "did you mean" hint, and most known names (of a similar length)
#: compared with each: a comparison costs ~10 us, and a file may hold thousands of typos.
MAX_SUGGESTIONS = 5
MAX_SUGGESTION_CANDIDATES = 500
#: Longest duration string (``1h 30m``) and longest duration, in seconds (about ten years).
MAX_DURATION_CHARS = 64
MAX_DURATION_S = 10 * 365 * 86400
#: How far in the past a start time (``--at``) may be, for clocks apart and typing: past it, a job
#: would run now, which a mistyped year (2025 for 2026) never means.
AT_PAST_MAX_S = 60
#: Longest environment variable name in a pipeline file.
MAX_ENV_NAME_CHARS = 128

#: Longest queue or job type name: it is part of broker keys, task names and index keys.
NAME_MAX_CHARS = 64

#: Messages kept in the quarantine; the oldest go first past this.
QUARANTINE_MAX_MESSAGES = 1_000
#: Bytes of a set-aside message kept for inspection; the rest is cut off.
QUARANTINE_MAX_BYTES = 16 * 1024
