"""``camvault ingest FILE``'s settings without pydantic: a snapshot of validated values.

A drop-in camera's upload script runs ``camvault ingest --camera CAM FILE`` once per
segment. Validating the whole configuration (pydantic + pydantic-settings: 0.1 to 0.2 s of
imports and model building) would be most of that command's cost, although the answer is
the same every time. So the first run validates everything with ``load_settings`` exactly
as every other command does (same errors, same exit code) and writes the few plain values
ingest needs (``wiring.IngestConfig``) to a small file under the user's cache directory;
later runs read them back, standard library only.

The snapshot is keyed by everything validation depends on: the config file's bytes (or
its absence), every ``CAMVAULT_*`` variable, the camvault version and the size and mtime
of the modules that define the rules. Any change there is a different key, so a new or
broken config is always fully validated first, and an invalid one is never snapshotted
(its error is raised on every run). No cache directory (no ``$HOME``, read-only home): the
full validation every time. Nothing here is needed for correctness; delete the directory
at will.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import camvault
from camvault.wiring import IngestConfig

_FORMAT = "1"
_KEEP = 32  # snapshots kept (one per distinct config + environment)
# the modules whose rules decide what a valid config is
_RULES = ("config.py", "config_sources.py", "keys.py", "wiring.py", "config_snapshot.py")


def cache_dir(environ: Mapping[str, str]) -> Path | None:
    base = environ.get("XDG_CACHE_HOME") or (
        str(Path(environ["HOME"]) / ".cache") if environ.get("HOME") else ""
    )
    return Path(base) / "camvault" / "settings" if base else None


def _key(path: str | Path | None, environ: Mapping[str, str]) -> str:
    # the same choice of file as camvault.config.config_file (not imported: pydantic)
    explicit = path is not None or "CAMVAULT_CONFIG" in environ
    file = Path(path or environ.get("CAMVAULT_CONFIG") or "camvault.toml")
    h = hashlib.sha256(f"{_FORMAT}\0{camvault.__version__}\0{explicit}\0".encode())
    here = Path(__file__).parent
    for name in _RULES:
        st = (here / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    try:
        h.update(b"file\0" + file.read_bytes())
    except FileNotFoundError:
        h.update(b"absent\0" + str(file).encode())
    for k, v in sorted(environ.items()):
        if k.upper().startswith("CAMVAULT_"):
            h.update(f"\0{k}={v}".encode())
    return h.hexdigest()


def _to_json(cfg: IngestConfig) -> str:
    return json.dumps(
        {
            "spool_dir": str(cfg.spool_dir),
            "quarantine_dir": str(cfg.quarantine_dir),
            "crc32_min_bytes": cfg.crc32_min_bytes,
            "prefix": cfg.prefix,
            "future_tolerance_seconds": cfg.future_tolerance_seconds,
            "keep_committed_days": cfg.keep_committed_days,
            "camera_ids": sorted(cfg.camera_ids),
        }
    )


def _from_json(text: str) -> IngestConfig:
    d = json.loads(text)
    return IngestConfig(
        spool_dir=Path(d["spool_dir"]),
        quarantine_dir=Path(d["quarantine_dir"]),
        crc32_min_bytes=int(d["crc32_min_bytes"]),
        prefix=str(d["prefix"]),
        future_tolerance_seconds=int(d["future_tolerance_seconds"]),
        keep_committed_days=int(d["keep_committed_days"]),
        camera_ids=frozenset(str(c) for c in d["camera_ids"]),
    )


def _store(directory: Path, key: str, cfg: IngestConfig) -> None:
    import tempfile  # here: only a new or changed config is stored (it loads `random`)

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_to_json(cfg))
        os.replace(tmp, directory / f"{key}.json")  # readers see all of it or nothing
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    snapshots = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in snapshots[:-_KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()


def load_ingest_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> IngestConfig:
    """``IngestConfig`` for this config file and environment: from the snapshot when one
    exists, else from a full ``load_settings`` (raising its ``ConfigError``), snapshotted."""
    environ = os.environ if environ is None else environ
    directory = cache_dir(environ)
    key = _key(path, environ)
    if directory is not None:
        try:
            return _from_json((directory / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no snapshot yet (or a damaged one): validate
    from camvault.config import load_settings

    cfg = IngestConfig.from_settings(load_settings(path, environ))
    # only if the file did not change while it was validated (the key names its bytes)
    if directory is not None and _key(path, environ) == key:
        with contextlib.suppress(OSError):
            _store(directory, key, cfg)
    return cfg
