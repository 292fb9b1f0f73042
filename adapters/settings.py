"""Settings from the environment (prefix `DIANABOT_`) or a `.env` file."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    aggregate_cache_size: int = Field(10_000, ge=0)
    group_commit: bool = Field(True, description="Commit concurrent commands together")
    group_commit_max_batch: int = Field(32, ge=1, le=1000)
    log_level: str = "INFO"
    log_format: str = Field("console", pattern="^(console|json)$")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept `1,2,3` (the natural way to write a list in an env var) as well as a list."""
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            return frozenset(int(part) for part in parts if part)
        return value
