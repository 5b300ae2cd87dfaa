"""Configuration: embedded defaults, then a TOML file, then `TELECART_*` environment variables.

Every setting has a default that works with no file at all (SQLite in the user's data
directory, listening on 127.0.0.1:8080). See docs/configuration.md for each key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

INITIAL_UPLINK_KBPS_RANGE = (50, 5000)  # where the agent's rate control may start

DEFAULT_SPECIALTIES: tuple[str, ...] = (
    "cardiology",
    "pulmonology",
    "neurology",
    "endocrinology",
    "paediatrics",
    "dermatology",
    "ent",
    "general_medicine",
)


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class TurnConfig:
    """coturn with `use-auth-secret`: the server signs short-lived credentials with `secret`."""

    urls: tuple[str, ...] = ()
    secret: str | None = None
    ttl_s: int = 600


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("telecart")))
    database: Path | None = None
    specialties: tuple[str, ...] = DEFAULT_SPECIALTIES
    turn: TurnConfig = TurnConfig()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    login_attempts: int = 5
    login_window_s: float = 300.0
    web_session_ttl_s: int = 12 * 3600
    ws_messages_per_s: float = 30.0
    ws_burst: int = 90
    max_attachment_bytes: int = 20 * 1024 * 1024
    request_timeout_s: int = 1800
    reconnect_timeout_s: int = 900  # a session reconnecting this long ends (link_lost)

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "telecart.sqlite3"

    @property
    def uses_tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class AgentConfig:
    server_url: str = "ws://127.0.0.1:8080/ws"
    token: str | None = None
    data_dir: Path = field(
        default_factory=lambda: Path(platformdirs.user_data_dir("telecart-agent"))
    )
    nurse_host: str = "127.0.0.1"
    nurse_port: int = 8081
    still_format: str = "jpeg"
    still_jpeg_quality: int = 92
    ice_addresses: tuple[str, ...] = ()
    initial_uplink_kbps: int = 300
    record_link: bool = False  # keep each call's link recording (cart_agent/link_recording.py)
    devices: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = ServerConfig()
    agent: AgentConfig = AgentConfig()


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (if given) over the defaults, then apply the environment."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {path} is not valid TOML: {exc}") from None
    environ = os.environ if env is None else env
    server = _server_from(data.get("server", {}), environ)
    agent = _agent_from(data.get("agent", {}), data.get("devices", {}), environ)
    return Config(server=server, agent=agent)


def _server_from(table: Mapping[str, Any], env: Mapping[str, str]) -> ServerConfig:
    cfg = ServerConfig()
    turn_table = table.get("turn", {})
    turn = TurnConfig(
        urls=tuple(_list_of_str(turn_table, "urls", "server.turn")),
        secret=_opt_str(turn_table, "secret", "server.turn"),
        ttl_s=_int(turn_table, "ttl_s", TurnConfig.ttl_s, "server.turn"),
    )
    cfg = replace(
        cfg,
        host=_str(table, "host", cfg.host, "server"),
        port=_int(table, "port", cfg.port, "server"),
        data_dir=Path(_str(table, "data_dir", str(cfg.data_dir), "server")),
        database=_opt_path(table, "database", "server"),
        specialties=tuple(_list_of_str(table, "specialties", "server")) or cfg.specialties,
        turn=turn,
        tls_cert=_opt_path(table, "tls_cert", "server"),
        tls_key=_opt_path(table, "tls_key", "server"),
        login_attempts=_int(table, "login_attempts", cfg.login_attempts, "server"),
        web_session_ttl_s=_int(table, "web_session_ttl_s", cfg.web_session_ttl_s, "server"),
        request_timeout_s=_int(table, "request_timeout_s", cfg.request_timeout_s, "server"),
        reconnect_timeout_s=_int(table, "reconnect_timeout_s", cfg.reconnect_timeout_s, "server"),
    )
    if "TELECART_HOST" in env:
        cfg = replace(cfg, host=env["TELECART_HOST"])
    if "TELECART_PORT" in env:
        cfg = replace(cfg, port=_env_int(env, "TELECART_PORT"))
    if "TELECART_DATA_DIR" in env:
        cfg = replace(cfg, data_dir=Path(env["TELECART_DATA_DIR"]))
    if "TELECART_DATABASE" in env:
        cfg = replace(cfg, database=Path(env["TELECART_DATABASE"]))
    if "TELECART_TURN_SECRET" in env:
        cfg = replace(cfg, turn=replace(cfg.turn, secret=env["TELECART_TURN_SECRET"]))
    if "TELECART_TURN_URLS" in env:
        urls = tuple(u.strip() for u in env["TELECART_TURN_URLS"].split(",") if u.strip())
        cfg = replace(cfg, turn=replace(cfg.turn, urls=urls))
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"server.port must be between 1 and 65535, not {cfg.port}.")
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ConfigError("server.tls_cert and server.tls_key must be given together.")
    if cfg.turn.ttl_s < 60:
        raise ConfigError("server.turn.ttl_s must be at least 60 seconds.")
    return cfg


def _agent_from(
    table: Mapping[str, Any], devices: Mapping[str, Any], env: Mapping[str, str]
) -> AgentConfig:
    cfg = AgentConfig()
    token = _opt_str(table, "token", "agent")
    token_file = _opt_path(table, "token_file", "agent")
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"agent.token_file {token_file} cannot be read: {exc}") from None
    cfg = replace(
        cfg,
        server_url=_str(table, "server_url", cfg.server_url, "agent"),
        token=token,
        data_dir=Path(_str(table, "data_dir", str(cfg.data_dir), "agent")),
        nurse_host=_str(table, "nurse_host", cfg.nurse_host, "agent"),
        nurse_port=_int(table, "nurse_port", cfg.nurse_port, "agent"),
        still_format=_str(table, "still_format", cfg.still_format, "agent"),
        still_jpeg_quality=_int(table, "still_jpeg_quality", cfg.still_jpeg_quality, "agent"),
        ice_addresses=tuple(_list_of_str(table, "ice_addresses", "agent")),
        initial_uplink_kbps=_int(table, "initial_uplink_kbps", cfg.initial_uplink_kbps, "agent"),
        record_link=_bool(table, "record_link", cfg.record_link, "agent"),
        devices=dict(devices),
    )
    if "TELECART_SERVER_URL" in env:
        cfg = replace(cfg, server_url=env["TELECART_SERVER_URL"])
    if "TELECART_AGENT_DATA_DIR" in env:
        cfg = replace(cfg, data_dir=Path(env["TELECART_AGENT_DATA_DIR"]))
    if "TELECART_ICE_ADDRESSES" in env:
        addresses = tuple(a.strip() for a in env["TELECART_ICE_ADDRESSES"].split(",") if a.strip())
        cfg = replace(cfg, ice_addresses=addresses)
    if "TELECART_CART_TOKEN" in env:
        cfg = replace(cfg, token=env["TELECART_CART_TOKEN"])
    if cfg.still_format not in ("jpeg", "png"):
        raise ConfigError("agent.still_format must be 'jpeg' or 'png'.")
    low, high = INITIAL_UPLINK_KBPS_RANGE
    if not low <= cfg.initial_uplink_kbps <= high:
        raise ConfigError(f"agent.initial_uplink_kbps must be between {low} and {high}.")
    if not 1 <= cfg.still_jpeg_quality <= 100:
        raise ConfigError("agent.still_jpeg_quality must be between 1 and 100.")
    return cfg


def _str(table: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key} must be text.")
    return value


def _opt_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key} must be text.")
    return value


def _opt_path(table: Mapping[str, Any], key: str, where: str) -> Path | None:
    value = _opt_str(table, key, where)
    return Path(value) if value else None


def _int(table: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key} must be a whole number.")
    return value


def _bool(table: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false.")
    return value


def _list_of_str(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key} must be a list of text.")
    return value


def _env_int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ConfigError(f"{key} must be a whole number, not {env[key]!r}.") from None
