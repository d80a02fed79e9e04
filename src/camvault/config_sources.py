"""The sources ``config.Settings`` is layered from, declared for pydantic-settings.

``config.load_settings`` sets ``LOAD`` (the file and the environment mapping of one call);
``Settings.settings_customise_sources`` then returns ``layered_sources``: keyword overrides,
``CAMVAULT_<SECTION>_<KEY>`` variables, the short names of ``ENV_ALIASES``, the TOML file;
pydantic-settings merges them key by key, the first one that sets a key winning.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from camvault.errors import ConfigError


def layered_sources(
    settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource
) -> tuple[PydanticBaseSettingsSource, ...]:
    load = LOAD.get()
    if load is None:  # Settings(**kw) outside load_settings: the keywords alone
        return (init_settings,)
    return (
        init_settings,
        _Env(settings_cls, load),
        _EnvAliases(settings_cls, load),
        _Toml(settings_cls, load),
    )


def split_node_table(data: Any) -> Any:
    """``[node]`` is a table (id + fleet settings) while ``node`` stays the node id."""
    if isinstance(data, dict) and isinstance(data.get("node"), Mapping):
        data = dict(data)
        table = dict(data.pop("node"))
        if "id" in table:
            data["node"] = table.pop("id")
        data["fleet"] = {**table, **dict(data.get("fleet") or {})}
    return data


@dataclass
class Load:
    """What one ``load_settings`` call reads, handed to the sources it declares."""

    file: Path | None  # None: no file (defaults)
    environ: Mapping[str, str]
    env_used: bool = False  # some CAMVAULT_* variable set a value (named in errors)


LOAD: ContextVar[Load | None] = ContextVar("camvault_settings_load", default=None)


class _Env(EnvSettingsSource):
    """``CAMVAULT_<SECTION>_<KEY>`` from the given mapping (not necessarily ``os.environ``)."""

    def __init__(self, settings_cls: type[BaseSettings], load: Load) -> None:
        self._load = load
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Only the names camvault documents: a whole section as JSON (CAMVAULT_S3) and the
        # camera list (file only) are not settings, so they are left alone, as before.
        whole = {f"camvault_{name}" for name in self.settings_cls.model_fields} - _SCALAR_VARS
        return {
            k.lower(): v
            for k, v in self._load.environ.items()
            if k.startswith("CAMVAULT_")
            and k.lower() not in whole
            and not k.lower().startswith("camvault_cameras_")
        }

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        # a variable is one value, never JSON: CAMVAULT_LIFECYCLE_CAMERAS='{…}' is refused
        # by validation ("lifecycle.cameras: Input should be a valid dictionary")
        return value

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        self._load.env_used |= bool(data)
        return data


_SCALAR_VARS = {"camvault_data_dir", "camvault_node"}


# Short environment names fixed by the design brief → (section, key).
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "CAMVAULT_SEGMENT_SECONDS": ("recording", "segment_seconds"),
    "CAMVAULT_NODE_LEASE_SECONDS": ("fleet", "lease_seconds"),
    "CAMVAULT_NODE_STOP_MARGIN_SECONDS": ("fleet", "stop_margin_seconds"),
    "CAMVAULT_NODE_MAX_CAMERAS": ("fleet", "max_cameras"),
    "CAMVAULT_NODE_START_STAGGER_SECONDS": ("fleet", "start_stagger_seconds"),
}


class _EnvAliases(PydanticBaseSettingsSource):
    """The short names of ``ENV_ALIASES``; the long ``CAMVAULT_<SECTION>_<KEY>`` wins."""

    def __init__(self, settings_cls: type[BaseSettings], load: Load) -> None:
        super().__init__(settings_cls)
        self._load = load

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the nested dict itself

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for var, (section, key) in ENV_ALIASES.items():
            if var in self._load.environ:
                out.setdefault(section, {})[key] = self._load.environ[var]
        self._load.env_used |= bool(out)
        return out


class _Toml(TomlConfigSettingsSource):
    """The TOML file, with ``[node]`` split into the node id and the fleet settings (before
    merging, so ``CAMVAULT_NODE`` replaces only the id), and read errors as one line."""

    def __init__(self, settings_cls: type[BaseSettings], load: Load) -> None:
        super().__init__(settings_cls, toml_file=load.file)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = tomllib.loads(Path(file_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file_path}: {exc}") from exc
        split: dict[str, Any] = split_node_table(data)
        return split
