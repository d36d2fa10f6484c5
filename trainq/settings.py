"""Settings: one pydantic-settings class read from ``TRAINQ_*`` variables, and its Celery config.

Nothing else in trainq reads its configuration from ``os.environ``. With no broker set,
trainq uses the embedded Redis (see ``trainq.ops.embedded``) so one machine needs no server.
"""

from __future__ import annotations

import importlib.util
import math
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from trainq.errors import DurationError, InvalidName, InvalidSetting
from trainq.inputs.durations import parse_duration
from trainq.inputs.problems import validator_words
from trainq.job.retry import RetryPolicy
from trainq.store import sentinel
from trainq.store.keys import Keys

DEFAULT_WORKER_MODULES = ["workers.data", "workers.training", "workers.detection"]
#: The password part of a URL's ``user:password@``, wherever a URL appears in a text.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*):[^\s/]*@")
PASSWORD_MASK = "***"
#: A quoted piece of a URL in a parser's message (``Port could not be cast to integer value as 'x'``),
#: and what it is shown as.
_QUOTED = re.compile(r"'[^']*'")
_QUOTED_MASK = "'...'"


class PoolSettings(BaseModel):
    """How a queue's worker pool runs: processes, and messages reserved per process."""

    concurrency: Annotated[int, Field(ge=1)] = 2
    prefetch: Annotated[int, Field(ge=0)] = 1  # 0: Celery reserves without limit


def _seconds(value: Any) -> Any:
    """A retention given as a duration (``7d``, ``36h``, ``0``) as seconds."""
    try:
        return parse_duration(value) if value is not None else None
    except DurationError as exc:
        raise ValueError(str(exc)) from exc


#: Seconds a wait or an interval lasts: finite and above 0 (sockets and sleeps refuse the others).
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=1, le=65535)]

#: Seconds a finished record is kept; ``0`` keeps it forever.
Retention = Annotated[float, BeforeValidator(_seconds)]
DAY_S = 86400.0

DEFAULT_POOLS = {"training": PoolSettings(concurrency=1), "data": PoolSettings(concurrency=2)}


class Settings(BaseSettings):
    """Everything configurable in trainq; each field is also ``TRAINQ_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TRAINQ_", env_nested_delimiter="__")

    broker_url: str | None = None
    result_backend: str | None = None
    registry_url: str | None = None
    home: Path = Field(default_factory=lambda: Path.home() / ".trainq")
    artifacts: Path | None = None
    key_prefix: str = "trainq:"
    worker_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_WORKER_MODULES))
    pools: dict[str, PoolSettings] = Field(default_factory=lambda: dict(DEFAULT_POOLS))
    retry: RetryPolicy = RetryPolicy()
    default_priority: Annotated[int, Field(ge=0, le=9)] = 5
    kill_grace_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    heartbeat_s: Seconds = 2.0
    lease_s: Seconds = 30.0
    reaper_interval_s: Seconds = 5.0
    max_recoveries: Annotated[int, Field(ge=0)] = 3
    visibility_timeout_s: Seconds = 300.0
    restore_interval_s: Seconds = 5.0
    #: How long a queued job may have no message in a Redis broker before a reaper sends it again.
    lost_message_s: Seconds = 600.0
    connect_timeout_s: Seconds = 2.0
    #: How long RabbitMQ may leave a send unanswered once connected (a frozen broker, a partition).
    broker_timeout_s: Seconds = 30.0
    log_max_lines: Annotated[int, Field(ge=1)] = 20_000
    gpus: str | None = None
    flower_address: str = "127.0.0.1"
    flower_port: Port = 5555
    flower_basic_auth: str | None = None
    #: Where pages link a job's Flower task (default: the page's host on ``flower_port``); without
    #: any ``user:password@``, which every viewer would get: the browser asks for Flower's login.
    flower_url: str | None = None
    web_address: str = "127.0.0.1"
    web_port: Port = 5580
    #: ``user:password`` pairs, comma-separated; with ``web_token``, required on every request.
    web_basic_auth: SecretStr | None = None
    web_token: SecretStr | None = None
    #: Let authenticated HTTP callers (trainq web, Flower's task API) submit shell ``command`` jobs.
    web_allow_commands: bool = False
    #: Let Celery clients without trainq (``send_task``, Flower's send-task) run shell ``command`` jobs.
    client_commands: bool = False
    beat_schedule_module: str = "beat_schedule"
    beat_interval_s: Seconds = 5.0
    #: How long Beat's lock outlives a Beat that stops renewing it (killed, cut off): the longest a
    #: waiting Beat waits before it takes over. Renewed every tick, so longer than ``beat_interval_s``.
    beat_lock_s: Seconds = 30.0
    schedule_catch_up: bool = True
    # Retention of finished records (docs/reliability.md "Retention"): durations, 0 = forever.
    retention_succeeded: Retention = 7 * DAY_S
    retention_cancelled: Retention = 7 * DAY_S
    retention_failed: Retention = 30 * DAY_S
    retention_dead: Retention = 30 * DAY_S
    retention_blocked: Annotated[float | None, BeforeValidator(_seconds)] = None
    retention_batch: int = 1000
    # Redis Sentinel and replication (docs/reliability.md "Failover").
    sentinel_master: str | None = None
    sentinel_password: str | None = None
    min_replicas: int = 0
    replica_wait_ms: int = 1000
    # RabbitMQ (docs/reliability.md "RabbitMQ"): classic queues (10 priorities) or quorum (replicated).
    queue_type: Literal["classic", "quorum"] = "classic"

    @property
    def artifacts_dir(self) -> Path:
        """Where result files are collected (``TRAINQ_ARTIFACTS``, else ``<home>/artifacts``)."""
        return self.artifacts or self.home / "artifacts"

    def broker(self) -> str:
        """The broker URL, starting the embedded Redis when none is configured."""
        if self.broker_url:
            return self.broker_url
        from trainq.ops import embedded

        return embedded.broker_url(self.home)

    def registry(self) -> str:
        """The registry's Redis URL: the setting, else the broker if it is Redis, else embedded."""
        if self.registry_url:
            return self.registry_url
        broker = self.broker()
        if is_redis(broker):
            return broker
        from trainq.ops import embedded

        return embedded.broker_url(self.home)

    def backend(self) -> str:
        """Celery's result backend: the setting, else the registry's Redis."""
        return self.result_backend or self.registry()

    @cached_property
    def secrets(self) -> list[str]:
        """The passwords and tokens these settings hold (URLs', Sentinel's, trainq web's and Flower's),
        longest first: a job's log, result and error never show them, though its command inherits them.
        Read once: every job of the process masks them."""
        found = {self.sentinel_password, self.web_token.get_secret_value() if self.web_token else None}
        for url in (self.broker(), self.registry(), self.backend()):
            for part in url.split(";"):
                password = urlsplit(part.strip()).password
                found |= {password, unquote(password)} if password else set()
        logins = self.web_basic_auth.get_secret_value() if self.web_basic_auth else ""
        for pair in f"{self.flower_basic_auth or ''},{logins}".split(","):
            found.add(pair.partition(":")[2])
        return sorted(filter(None, found), key=len, reverse=True)

    def retention(self, state: str) -> float:
        """Seconds a record finished in ``state`` is kept (0 = forever); blocked follows failed."""
        if state == "blocked":
            return self.retention_failed if self.retention_blocked is None else self.retention_blocked
        return float(getattr(self, f"retention_{state}", 0.0))

    @field_validator("lease_s")
    @classmethod
    def _renewed_in_time(cls, lease_s: float, info: ValidationInfo) -> float:
        """A lease outlasts two heartbeats, so one late renewal does not lose a healthy job."""
        heartbeat_s = info.data.get("heartbeat_s")
        if heartbeat_s is not None and lease_s < 2 * heartbeat_s:
            raise ValueError(f"must be at least twice TRAINQ_HEARTBEAT_S ({heartbeat_s:g} s)")
        return lease_s

    @field_validator("broker_url", "result_backend", "registry_url")
    @classmethod
    def _usable_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        """A URL kombu, Celery or redis-py can use, refused here in one line rather than at first use."""
        if url and (problem := url_problem(url, info.field_name or "")):  # empty: the embedded Redis
            raise ValueError(problem)  # the URL itself is left out of the message: it may hold a password
        return url

    @field_validator("flower_url")
    @classmethod
    def _link_without_login(cls, url: str | None) -> str | None:
        """Flower's URL for links, less its credentials: pages and API answers hand it to every viewer."""
        return without_userinfo(url) if url else url

    @field_validator("pools")
    @classmethod
    def _pool_queues(cls, pools: dict[str, PoolSettings], info: ValidationInfo) -> dict[str, PoolSettings]:
        """A pool's queue follows the naming rule: a reserved name would take every worker down."""
        from trainq.broker.names import check_queue

        for queue in pools:
            try:
                check_queue(queue, info.data.get("key_prefix", "trainq:"))
            except InvalidName as exc:
                raise ValueError(str(exc)) from None
        return pools

    @field_validator("beat_schedule_module")
    @classmethod
    def _module_name(cls, name: str) -> str:
        """A dotted module name (or none): Beat imports it by name, and a path or a relative name
        (``../etc``, ``.x``) would crash it with a traceback instead."""
        if name and not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(
                f"{name[:100]!r} is not a module name: use a dotted name such as beat_schedule or "
                'myproject.schedules ("" for no static schedules)'
            )
        return name

    @field_validator("beat_lock_s")
    @classmethod
    def _beat_lock_outlasts_a_tick(cls, lock_s: float, info: ValidationInfo) -> float:
        """Beat renews its lock once a tick: a lock no longer than a tick would lapse between two."""
        interval = info.data.get("beat_interval_s")
        if interval is not None and lock_s <= interval:
            raise ValueError(f"must be longer than TRAINQ_BEAT_INTERVAL_S ({interval:g} s)")
        return lock_s

    def pool(self, queue: str) -> PoolSettings:
        """The pool settings of ``queue`` (defaults for queues not listed)."""
        return self.pools.get(queue, PoolSettings())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment; raises InvalidSetting naming each
    ``TRAINQ_*`` variable that does not parse, and why."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TRAINQ_{'__'.join(str(part) for part in error['loc']).upper()}: "
            + validator_words(error["msg"])
            for error in exc.errors()
        )
        raise InvalidSetting(f"invalid setting {problems}") from None
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"TRAINQ_{field.group(1).upper()}" if field else "a TRAINQ_* variable"
        raise InvalidSetting(f"invalid setting {name}: expected JSON") from None


def check_worker_modules(settings: Settings) -> None:
    """Raise InvalidSetting naming the first of ``TRAINQ_WORKER_MODULES`` no module answers to, looked
    for as Celery's loader imports them (the working directory included). A module that exists but
    fails on an import of its own is left to fail as it does: that is its code's error, not the setting's.
    """
    from celery.utils.imports import cwd_in_path

    with cwd_in_path():
        for name in settings.worker_modules:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):  # a parent package missing, or not a module name
                found = False
            if not found:
                raise InvalidSetting(f"invalid setting TRAINQ_WORKER_MODULES: no module named {name!r}")


def url_problem(url: str, field: str) -> str | None:
    """What makes ``url``, the setting ``field`` (Sentinel's parts joined by ``;``), unusable, or None."""
    from celery.app.backends import BACKEND_ALIASES
    from kombu.transport import TRANSPORT_ALIASES

    schemes = {"broker_url": TRANSPORT_ALIASES, "result_backend": BACKEND_ALIASES}.get(field)
    for part in (p.strip() for p in url.split(";")):
        # No piece of the URL is echoed: mistyped, its password may be in any piece (path, port, host).
        try:
            split = urlsplit(part)
            split.port  # noqa: B018  (reading it checks it)
        except ValueError as exc:
            return f"not a usable URL: {_QUOTED.sub(_QUOTED_MASK, str(exc))}"
        if split.scheme and not part.lower().startswith(f"{split.scheme}://"):
            return f"not a usable URL: write {split.scheme}:// before its host"
        if schemes is None and not is_redis(part):
            return "the registry is a Redis: use redis://, rediss://, unix:// or sentinel://"
        if schemes is not None and split.scheme.partition("+")[0] not in schemes:
            usual = "redis://, rediss://, sentinel://" + (" or amqp://" if field == "broker_url" else "")
            return f"unknown scheme {split.scheme!r}: use {usual}"
        db = split.path.strip("/")
        if split.scheme in ("redis", "rediss", "sentinel") and db and not db.isdigit():
            return "the Redis database (the path after the host) must be a number: redis://host:6379/0"
        if split.scheme in ("redis", "rediss", "unix") and (problem := _redis_options_problem(part)):
            return problem
    return None


def _redis_options_problem(url: str) -> str | None:
    """What redis-py refuses in ``url``'s options (``?name=value``), or None: a connection is made of
    them (not opened), where a name it does not know fails every command later."""
    import redis

    try:
        redis.ConnectionPool.from_url(url).make_connection()
    except ValueError as exc:  # a value its parser refuses
        return str(exc).rstrip(".")
    except redis.RedisError as exc:  # a value the connection refuses (``ssl_cert_reqs=bogus``)
        named = [name for name, value in parse_qsl(urlsplit(url).query) if value and value in str(exc)]
        return f"invalid option {named[0] if named else '?'} in the URL: {str(exc).rstrip('.')}"
    except TypeError as exc:
        name = re.search(r"argument '(\w+)'", str(exc))
        return f"unknown option {name[1] if name else str(exc)!r} in the URL"
    return None


def is_redis(url: str) -> bool:
    """True for ``redis://``, ``rediss://``, ``redis+socket://``, ``unix://`` and ``sentinel://`` URLs."""
    return url.startswith(("redis", "unix", sentinel.SCHEME))


def redacted(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with every URL's password shown as ``***``.

    Everything trainq prints or logs about a broker, registry or backend goes through this.
    """
    return _URL_PASSWORD.sub(rf"\g<head>:{PASSWORD_MASK}@", text)


#: Celery's ``override_backends``: its Redis result backends, less the subscription at every send.
RESULT_BACKENDS = {
    "redis": "trainq.broker.results:ResultBackend",
    "rediss": "trainq.broker.results:ResultBackend",
    "sentinel": "trainq.broker.results:SentinelResultBackend",
}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration for ``settings``: JSON only, late acks, one message per process."""
    broker = settings.broker()
    keys = Keys(settings.key_prefix)
    redbeat_url, password = _split_password(_redis_py_url(settings.registry()))
    config: dict[str, Any] = {
        "broker_url": broker,
        "result_backend": settings.backend(),  # Celery reads redis+socket:// as is
        "override_backends": RESULT_BACKENDS,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "default",
        "task_create_missing_queues": True,
        "task_queue_max_priority": 10,
        "task_default_priority": settings.default_priority,
        "task_track_started": False,
        # Task events come from workers started with -E (trainq worker/up, deploy/): no extra
        # publish per submit, and a worker started without -E does no event work per job.
        # Celery's result holds the outcome only: the record keeps the job's name, payload, worker
        # and queue (an extended result would repeat them for every finished job).
        "result_extended": False,
        "result_expires": int(settings.retention_succeeded) or None,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.connect_timeout_s,
        # The result backend (Redis) gives up on a silent server as fast as the registry does.
        "redis_socket_connect_timeout": settings.connect_timeout_s,
        "redis_socket_timeout": settings.connect_timeout_s,
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0.2},
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "beat_scheduler": "trainq.schedules:Scheduler",
        # The password travels as an option: Celery's `conf` report (Flower's worker page) masks
        # options named *password* but would show this URL as it is.
        "redbeat_redis_url": redbeat_url,
        "redbeat_redis_options": {
            **({"password": password} if password else {}),
            "socket_connect_timeout": settings.connect_timeout_s,
            "socket_timeout": settings.connect_timeout_s,
            "health_check_interval": 10,
        },
        "redbeat_key_prefix": keys.redbeat_prefix(),
        "redbeat_lock_key": keys.redbeat_lock(),
        "redbeat_lock_timeout": math.ceil(settings.beat_lock_s),  # redbeat renews it by whole seconds
        "beat_max_loop_interval": settings.beat_interval_s,
    }
    if broker.startswith("redis://"):
        from trainq.broker.transport import TRANSPORT

        config["broker_transport"] = TRANSPORT  # kombu's, minus a client object per publish
    elif sentinel.is_sentinel(broker):
        from trainq.broker.transport import SENTINEL_TRANSPORT

        config["broker_transport"] = SENTINEL_TRANSPORT
    elif broker.startswith("redis+socket://"):
        from trainq.broker.transport import use_for_redis_urls

        use_for_redis_urls()  # the embedded broker: the same transport, set another way
    if is_redis(broker):
        config["broker_transport_options"] = {
            "queue_order_strategy": "priority",
            "priority_steps": list(range(10)),
            "sep": ":",
            "visibility_timeout": settings.visibility_timeout_s,
            # Sweep for unacknowledged messages of lost workers every few seconds, not kombu's ~100 s.
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": settings.connect_timeout_s,
            "socket_timeout": settings.connect_timeout_s,
            "health_check_interval": 10,
            "retry_on_timeout": True,
        }
        config["result_backend_transport_options"] = {"retry_policy": {"max_retries": 2}}
    _follow_sentinel(settings, config)
    if broker.startswith(("amqp", "pyamqp")):
        _rabbitmq(settings, config)
    return config


def without_userinfo(url: str) -> str:
    """``url`` without its ``user:password@`` part."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password, and the password (decoded), or None when it has none."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host)), unquote(parts.password)


def _rabbitmq(settings: Settings, config: dict[str, Any]) -> None:
    """Publisher confirms always: a submit returns once RabbitMQ took the message. Quorum queues
    on request: replicated, but without x-max-priority (RabbitMQ refuses it on quorum queues).

    Every blocking read on a connection to RabbitMQ gives up after ``broker_timeout_s`` (py-amqp's
    ``read_timeout``, the socket's SO_RCVTIMEO): a single publish's confirm, its channel's opening and
    its queue's declare would otherwise wait without limit on a broker that stops answering with the
    connection left open. Reads with a timeout of their own (the handshake's, a worker's event loop)
    keep theirs; a write the broker does not take already fails within py-amqp's TCP_USER_TIMEOUT. A
    publish that timed out is tried once more (``task_publish_retry_policy``) on a new connection, which
    a frozen broker does not answer within the connect timeout."""
    config["broker_transport_options"] = {"confirm_publish": True, "read_timeout": settings.broker_timeout_s}
    if settings.queue_type == "quorum":
        config["task_default_queue_type"] = "quorum"
        config["task_create_missing_queue_type"] = "quorum"
        del config["task_queue_max_priority"]


def _follow_sentinel(settings: Settings, config: dict[str, Any]) -> None:
    """Point the broker, result backend and redbeat at the master Sentinel names, where used."""
    master, password = settings.sentinel_master or "", settings.sentinel_password
    if sentinel.is_sentinel(config["broker_url"]):
        config["broker_transport_options"].update(sentinel.transport_options(master, password))
    if sentinel.is_sentinel(config["result_backend"]):
        options = config.setdefault("result_backend_transport_options", {})
        options.update(sentinel.transport_options(master, password))
    registry = settings.registry()
    if sentinel.is_sentinel(registry):
        config["redbeat_redis_url"] = "redis-sentinel://"  # the addresses are in the options
        config["redbeat_redis_options"] = sentinel.redbeat_options(
            registry, master, password, settings.connect_timeout_s
        )


def _redis_py_url(url: str) -> str:
    """redis-py spells a unix socket ``unix://``."""
    return url.replace("redis+socket://", "unix://", 1)


def redis_py_url(url: str) -> str:
    """The ``url`` as redis-py's ``from_url`` reads it."""
    return _redis_py_url(url)
