"""Settings, read once: environment variables (`PREDICTOR_*`, `DATABASE_URL`) over an optional TOML file.

This is the only module that reads `os.environ`. Values are converted leniently ("8000" -> 8000), which
is right for configuration and wrong for features: feature values are judged strictly by the core.
Every variable also has a `*_FILE` form (`DATABASE_URL_FILE`, `PREDICTOR_DATABASE_PASSWORD_FILE`...) that
names a file holding the value, the convention of container secrets (compose, Kubernetes, Docker).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import tempfile
import tomllib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from predictor_core import ConfigurationError, DriftThresholds

__all__ = ["Settings"]

_ENV_PREFIX = "PREDICTOR_"
_LONGEST_DRIFT_WINDOW = 10 * 365 * 86400.0
"""A generous cap on the drift window, far inside the span a datetime can reach back."""
_LIST_FIELDS = {"model_dirs"}
_COMMA_FIELDS = {"cors_origins"}
"""Lists whose items may hold os.pathsep (URLs): comma-separated in the environment."""
_ORIGIN = re.compile(r"\*|https?://[^/\s?#@]+")
_HANDOVER = "PREDICTOR_SERVE_SETTINGS_FILE"
"""Names the file where `predictor serve` put its resolved settings for the worker processes it starts:
a file readable by its owner alone, not the environment, since the settings may hold a password."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the composition root needs; defaults give a working server with no set-up at all."""

    model: str = "breast_cancer"
    """Default model: a name (it serves its `production` alias, else its newest version), `NAME@VERSION`
    (this process serves that version whatever the aliases say), or a bundle directory (exactly that
    bundle, known by its manifest's name)."""
    model_dirs: tuple[str, ...] = ()
    """Extra bundle roots, searched before the shipped bundles (os.pathsep-separated in the environment)."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where onnxruntime runs; `cuda` fails at start-up when no GPU is usable, `auto` reports what it got."""
    threads: int | None = None
    """onnxruntime intra-op threads per session; None keeps the runtime adapter's measured default."""
    database_url: str | None = None
    """SQLAlchemy URL (postgresql+asyncpg://... or sqlite+aiosqlite:///...); None means a SQLite file in the
    user's data directory. Plain postgresql:// URLs are given the asyncpg driver."""
    database_password: str | None = None
    """Password for the user of a server `database_url` that has none, so the URL can be plain
    configuration while the password comes from a secret (PREDICTOR_DATABASE_PASSWORD_FILE)."""
    record: bool = True
    """Record every prediction in the database before answering (the server always does)."""
    host: str = "127.0.0.1"
    port: int = msgspec.field(default=8000)
    workers: int = 1
    max_batch: int = 1000
    """Most records accepted in one batch request."""
    max_body_bytes: int = 1_048_576
    """Largest request body the HTTP API reads; larger ones get 413."""
    cors_origins: tuple[str, ...] = ()
    """Origins (`https://app.example:8443`) whose browser pages may call the API; `*` for any. Empty:
    CORS is off, as by default (comma-separated in the environment: PREDICTOR_CORS_ORIGINS)."""
    inference: Literal["inline", "batch", "thread", "thread-batch"] = "batch"
    """Where inference runs: `inline` on the event loop, one call per request; `batch` on the event loop,
    the requests that reach inference in the same loop turn merged into one call; `thread` in a worker
    thread (a slow model must not stall the server); `thread-batch` in a worker thread, the requests that
    arrive while a call runs merged into the next (docs/api.md has the figures of each)."""
    max_in_flight: int = 64
    """Most requests one worker handles at once (health probes and /metrics aside); one more is answered
    503 with Retry-After at once instead of queueing into long tails. With grouped commits and batched
    inference 64 connections are served without a shed at a p99 under 100 ms, where a bound of 16 shed
    98 % of them (docs/operations.md). 0: no bound."""
    max_header_bytes: int = 32_768
    """Largest request head (request line and headers) a connection may send; a larger one gets 431."""
    header_timeout: float = 10.0
    """Seconds from a connection's opening, or from the end of its previous answer, in which the next
    request line and headers must have arrived; else 408 and close (an idle connection is just closed)."""
    body_timeout: float = 10.0
    """Seconds a request body still due may stop arriving (no byte at all) before 408 and close."""
    keep_alive_timeout: int = 5
    """Whole seconds an idle keep-alive connection stays open after an answer (uvicorn's timeout)."""
    max_connections: int = 1000
    """Most connections one worker holds; one more gets 503 with Retry-After at once and is closed. Lowered
    at start to the open-file limit (RLIMIT_NOFILE) less 64, so connections cannot exhaust descriptors."""
    metrics: Literal["loopback", "open"] = "loopback"
    """Who may read GET /metrics: loopback clients only (and the hook for API keys), or every client."""
    request_log: bool = True
    """One JSON line per request on standard output: request id, key id, route, status, model, stages."""
    drain_timeout: float = 8.0
    """Seconds a server stopped by SIGTERM gives the requests in flight to finish (docker stop waits 10)."""
    drain_delay: float = 0.0
    """Seconds between SIGTERM and closing the listening socket, while readiness already answers 503
    "draining": set it to the load balancer's probe interval so it stops sending first."""
    model_store: str | None = None
    """The deployment's model store: `predictor models add` places bundles there and the server serves them
    beside the shipped ones; None means a `models` folder in the user's data directory."""
    watch_interval: float = 0.5
    """Seconds between two reads of the model aliases: a promotion reaches every worker within about this."""
    evict_after: float = 600.0
    """Seconds a loaded version that no alias or name serves stays in memory after its last request."""
    auth: Literal["auto", "required"] = "auto"
    """API keys: `auto` requires them whenever the server listens beyond loopback (and refuses to start
    with no key defined), `required` on loopback too. Health probes never need one."""
    redis_url: str | None = None
    """Redis for per-key rate limits shared by every worker and replica (`redis://host:6379/0`); None
    counts per process, so a key gets up to workers × replicas × its rate. Needs the `redis` extra."""
    drift_watch: float = 0.1
    """PSI from which a feature's drift status is `watch` (docs/monitoring.md)."""
    drift_alert: float = 0.2
    """PSI above which a feature's drift status is `drift`."""
    drift_min_rows: int = 500
    """Fewest predictions in a window for a drift verdict; fewer give `insufficient`."""
    drift_refresh: float = 300.0
    """Seconds between two refreshes of the server's drift gauges on /metrics (0: no gauges)."""
    drift_window: float = 86400.0
    """Seconds of recorded predictions the drift gauges summarise (the day before each refresh)."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"port must be between 1 and 65535, got {self.port}")
        for name in ("workers", "max_batch", "max_body_bytes", "max_header_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_in_flight < 0:
            raise ConfigurationError(f"max_in_flight must be 0 (no bound) or more, got {self.max_in_flight}")
        if not self.drain_timeout > 0 or not self.drain_delay >= 0:
            raise ConfigurationError("drain_timeout must be positive and drain_delay not negative")
        if not self.header_timeout > 0 or not self.body_timeout > 0 or self.keep_alive_timeout < 1:
            raise ConfigurationError(
                "header_timeout and body_timeout must be positive and keep_alive_timeout at least 1"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigurationError(f"threads must be at least 1, got {self.threads}")
        if not self.watch_interval > 0 or not self.evict_after >= 0:
            raise ConfigurationError("watch_interval must be positive and evict_after not negative")
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ConfigurationError(
                    f"cors_origins: {origin!r} is not an origin: scheme://host[:port] without a path "
                    "(https://app.example), or *"
                )
        if self.database_password is not None:
            url = self.database_url or ""
            if not url or url.startswith("sqlite"):
                raise ConfigurationError(
                    "database_password is set but the database is SQLite: set DATABASE_URL to a server"
                )
            if _url(url).password is not None:
                raise ConfigurationError(
                    "the database password is given twice: in DATABASE_URL and in database_password"
                )

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, *, file: str | Path | None = None, **overrides: Any
    ) -> Settings:
        """Settings from a TOML file (`PREDICTOR_CONFIG` or `file`), then the environment, then `overrides`.

        Raises:
            ConfigurationError: naming the setting that is wrong and why.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = file or env.get(f"{_ENV_PREFIX}CONFIG")
        if config_file:
            try:
                values.update(tomllib.loads(Path(config_file).read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigurationError(f"cannot read settings file {config_file}: {exc}") from exc
        values.update(_from_env(env))
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            said = str(exc)
            raise ConfigurationError(f"invalid settings: {_env_name(said)}{_choices(cls, said)}") from exc

    @contextlib.contextmanager
    def hand_over(self) -> Iterator[dict[str, str]]:
        """Write these settings to a private file for worker processes, removed on exit.

        Yields the environment entry that names the file (read back by `handed_over`).
        """
        fd, path = tempfile.mkstemp(prefix="predictor-settings-", suffix=".json")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(msgspec.json.encode(self))
            yield {_HANDOVER: path}
        finally:
            Path(path).unlink(missing_ok=True)

    @classmethod
    def handed_over(cls, environ: Mapping[str, str] | None = None) -> Settings | None:
        """The settings a parent process handed over with `hand_over`, or None when there are none.

        Raises:
            ConfigurationError: the handed-over file cannot be read or holds no valid settings.
        """
        path = (os.environ if environ is None else environ).get(_HANDOVER)
        if path is None:
            return None
        try:
            return msgspec.json.decode(Path(path).read_bytes(), type=cls)
        except (OSError, msgspec.DecodeError) as exc:
            raise ConfigurationError(f"invalid {_HANDOVER} {path}: {exc}") from exc

    def __repr__(self) -> str:
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        shown["database_url"] = self.redacted_database_url() if self.database_url else None
        shown["database_password"] = None if self.database_password is None else "***"
        shown["redis_url"] = None if self.redis_url is None else _redacted(self.redis_url)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def drift_thresholds(self) -> DriftThresholds:
        """The drift statuses' PSI thresholds and fewest rows.

        Raises:
            ConfigurationError: they are not 0 < drift_watch <= drift_alert, drift_min_rows >= 1; or the
                refresh is negative or infinite, or the window not within (0, ten years].
        """
        if not 0 <= self.drift_refresh < math.inf or not 0 < self.drift_window <= _LONGEST_DRIFT_WINDOW:
            raise ConfigurationError(
                "drift_refresh must be a finite number of seconds, not negative, and drift_window must be "
                f"positive and at most {_LONGEST_DRIFT_WINDOW:.0f} seconds (ten years), got "
                f"{self.drift_refresh} and {self.drift_window}"
            )
        try:
            return DriftThresholds(
                watch=self.drift_watch, drift=self.drift_alert, min_rows=self.drift_min_rows
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid drift settings: {exc}") from exc

    @property
    def auth_required(self) -> bool:
        """Whether the HTTP API needs API keys: beyond loopback always, on loopback when asked."""
        return self.auth == "required" or not is_loopback(self.host)

    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL: the configured one with its async driver, or the SQLite default."""
        if not self.database_url:
            return default_sqlite_url()
        url = self.database_url
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                url = driver + url[len(plain) :]
                break
        if self.database_password is None:
            return url
        return str(_url(url).set(password=self.database_password).render_as_string(hide_password=False))

    def resolved_model_store(self) -> Path:
        """The model store directory: the configured one, or the default in the user data directory."""
        return Path(self.model_store).expanduser() if self.model_store else default_model_store()

    def redacted_database_url(self) -> str:
        """The database URL with every secret hidden (`:password@`, `?password=`), for the start-up line."""
        return _redacted(self.resolved_database_url())


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); `0.0.0.0`, `::` and any name are not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _redacted(url: str) -> str:
    """A URL with every secret hidden (`redis://:***@host`, `?password=***`): see `redacted_url`."""
    from predictor_sql import redacted_url  # imported here: SQLAlchemy is not needed to read settings

    return redacted_url(url)


def default_model_store() -> Path:
    """`<user data dir>/predictor-core/models` (not created: `predictor models add` creates it)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("predictor-core", appauthor=False)) / "models"


def default_sqlite_url() -> str:
    """`sqlite+aiosqlite:///<user data dir>/predictor-core/predictions.db`, creating the directory.

    Raises:
        ConfigurationError: the directory cannot be made (a read-only container file system, say).
    """
    import platformdirs

    directory = Path(platformdirs.user_data_dir("predictor-core", appauthor=False))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create {directory} for the default SQLite database ({exc.strerror or exc}): "
            "set DATABASE_URL, or XDG_DATA_HOME to a writable directory"
        ) from None
    return f"sqlite+aiosqlite:///{directory / 'predictions.db'}"


def _url(url: str) -> Any:
    """The parsed SQLAlchemy URL (imported here: only a server URL with a separate password needs it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL: {exc}") from None


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    database_url = _variable(env, "DATABASE_URL")
    if database_url:
        values["database_url"] = database_url
    for name in Settings.__struct_fields__:
        raw = _variable(env, _ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        if name in _COMMA_FIELDS:
            values[name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            continue
        values[name] = tuple(p for p in raw.split(os.pathsep) if p) if name in _LIST_FIELDS else raw
    return values


def _variable(env: Mapping[str, str], name: str) -> str | None:
    """`$NAME`, or the content of the file `$NAME_FILE` names (one trailing newline dropped)."""
    path = env.get(f"{name}_FILE")
    if not path:
        return env.get(name)
    if env.get(name):
        raise ConfigurationError(f"both {name} and {name}_FILE are set: keep one")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {name}_FILE {path}: {exc.strerror or exc}") from None
    return text.removesuffix("\n").removesuffix("\r")


_FIELD = re.compile(r"`\$\.(\w+)`")
"""Where msgspec's messages name the field: `$.port`."""


def _choices(cls: type, message: str) -> str:
    """`; one of: inline, batch, ...` when the message is about a field that takes a fixed set of values."""
    field = _FIELD.search(message)
    kind = typing.get_type_hints(cls).get(field.group(1)) if field else None
    if typing.get_origin(kind) is not Literal:
        return ""
    return "; one of: " + ", ".join(str(choice) for choice in typing.get_args(kind))


def _env_name(message: str) -> str:
    """Point at the environment variable as well as the field: `$.port` -> `port (PREDICTOR_PORT)`."""
    return _FIELD.sub(lambda m: f"{m.group(1)} ({_ENV_PREFIX}{m.group(1).upper()})", message)
