"""Flower's defaults when started as ``celery -A trainq flower`` from this directory.

Flower reads ``flowerconfig.py`` from its working directory. These mirror ``trainq flower``:
bind 127.0.0.1 (``TRAINQ_FLOWER_ADDRESS``), keep task history in ``<home>/flower.db``, and ask
for ``TRAINQ_FLOWER_BASIC_AUTH`` credentials when they are set. Command-line options still win;
``trainq flower`` also refuses a public address without authentication.
"""

from trainq.settings import get_settings

_settings = get_settings()
_settings.home.mkdir(parents=True, exist_ok=True)
address = _settings.flower_address
port = _settings.flower_port
persistent = True
db = str(_settings.home / "flower.db")
if _settings.flower_basic_auth:
    basic_auth = _settings.flower_basic_auth.split(",")
