"""Settings from the environment (prefix `DIANABOT_`) or a `.env` file."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

DEFAULT_DATABASE_URL = "sqlite:///dianabot.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIANABOT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="sqlite:///FILE (default, embedded), postgresql+psycopg://..., or memory://",
    )
    bot_token: SecretStr | None = None
    telegram_api_server: str = Field(
        "https://api.telegram.org", description="Base URL of the Bot API server (self-hosted ok)"
    )
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    channel_id: int | None = None
    group_id: int | None = None
    vip_channel_id: int | None = None
    vip_stars_price: int = Field(
        250, ge=1, le=10_000, description="Telegram Stars per 30-day VIP subscription period"
    )
    aggregate_cache_size: int = Field(10_000, ge=0)
    group_commit: bool = Field(True, description="Commit concurrent commands together")
    group_commit_max_batch: int = Field(32, ge=1, le=1000)
    workers_host: str = Field(
        "127.0.0.1", description="Address the workers serve /healthz and /metrics on"
    )
    workers_port: int = Field(
        9464, ge=0, le=65535, description="Port of /healthz and /metrics; 0 picks a free one"
    )
    workers_standby_retry: float = Field(
        5.0, gt=0, le=300, description="Seconds between a standby's attempts to take the workers"
    )
    workers_stop_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds the workers wait for a batch in flight on stop"
    )
    vip_expiry_interval: float = Field(
        5.0, gt=0, le=3600, description="Seconds between runs of the VIP expiry job"
    )
    snapshot_prune_interval: float = Field(
        600.0, gt=0, description="Seconds between runs of the snapshot pruning job"
    )
    snapshots_keep: int = Field(3, ge=1, le=1000, description="Snapshots kept per aggregate")
    throttle_burst: int = Field(
        40, ge=0, le=10_000, description="Updates one user may send at once (0: no throttle)"
    )
    throttle_per_second: float = Field(
        2.0, gt=0, le=1000, description="Updates per second one user may send, sustained"
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Secret token Telegram sends with each webhook update (dianabot run --webhook)",
    )
    webhook_host: str = Field("127.0.0.1", description="Address dianabot run --webhook listens on")
    webhook_port: int = Field(
        8080, ge=0, le=65535, description="Port dianabot run --webhook listens on; 0: a free one"
    )
    audit_key_file: str | None = Field(
        None,
        description="The audit chain's key file, outside the database (default: beside a "
        "SQLite file; required for PostgreSQL, the same file for every process)",
    )
    log_level: str = Field("INFO", pattern="(?i)^(debug|info|warning|error|critical)$")
    log_format: str = Field("console", pattern="^(console|json)$")

    @field_validator("webhook_secret")
    @classmethod
    def _secret_token_chars(cls, value: SecretStr | None) -> SecretStr | None:
        secret = None if value is None else value.get_secret_value()
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept `1,2,3` (the natural way to write a list in an env var) as well as a list."""
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(part) for part in parts if part)
            except ValueError:
                raise ValueError(
                    f"expected Telegram user ids separated by commas, got {value!r}"
                ) from None
        return value


PREFIX = "DIANABOT_"
SECRET_FIELDS = frozenset({"bot_token", "webhook_secret"})
# Read by the test suite and the benchmarks, not by the application: not typos.
OTHER_VARIABLES = frozenset(
    {"DIANABOT_REQUIRE_POSTGRES", "DIANABOT_TEST_DATABASE_URL", "DIANABOT_BENCH_DATABASE_URL"}
)


class SettingsInvalid(ValueError):
    """A setting has a value that cannot be used; the message is one line naming it."""


def env_name(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`, or `SettingsInvalid` naming the bad setting.

    The message never repeats a secret's value, and keeps only pydantic's short reason.
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else "?"
            reason = item["msg"].removeprefix("Value error, ")
            if field in SECRET_FIELDS:
                reason = "invalid value"
            problems.append(f"{env_name(field)}: {reason}")
        raise SettingsInvalid("; ".join(problems)) from None
    except SettingsError as error:  # a value pydantic-settings could not even decode
        raise SettingsInvalid(str(error).splitlines()[0]) from None


def unknown_variables(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> list[tuple[str, str | None, str]]:
    """`DIANABOT_*` names that are no setting, as (name, closest setting or None, where found).

    pydantic-settings ignores them silently; a typo in DIANABOT_DATABASE_URL would otherwise send
    every command to a new, empty default store.
    """
    known = [env_name(field) for field in Settings.model_fields]
    sources: list[tuple[str, Iterable[str]]] = [
        ("environment", (os.environ if environ is None else environ).keys())
    ]
    if env_file is not None and Path(env_file).is_file():
        sources.append((str(env_file), dotenv_values(env_file).keys()))
    found = []
    for where, names in sources:
        for name in names:
            upper = name.upper()
            if upper.startswith(PREFIX) and upper not in known and upper not in OTHER_VARIABLES:
                close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
                found.append((name, close[0] if close else None, where))
    return found
