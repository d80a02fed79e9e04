"""Drop directories never follow links: a symlink or hard link in ``dock-2``'s drop dir
pointing at ``evidence-1``'s footage would archive that footage under dock-2's grants.
Links are quarantined with the reason (the link itself is moved, its target untouched),
and the file ingest checks is the open fd, so a name swapped after the check is caught."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import camvault.ingest as ingest_mod
from camvault.app import App
from camvault.cli import main
from camvault.ingest import DropWatcher
from camvault.models import MediaInfo
from tests.media import make_h264


def _sidecar(quarantined: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        quarantined.with_name(quarantined.name + ".reason.json").read_text()
    )
    return data


@pytest.fixture
def cams(make_settings: Any, tmp_path: Path) -> tuple[Any, Path, Path]:
    evidence = tmp_path / "evidence-1"  # another camera's footage, not a drop dir
    evidence.mkdir()
    drop = tmp_path / "dock-2"
    drop.mkdir()
    settings = make_settings(
        cameras=[{"id": "evidence-1"}, {"id": "dock-2", "drop_dir": str(drop)}]
    )
    return settings, evidence, drop


def test_watcher_quarantines_symlinks_and_hard_links(cams: tuple[Any, Path, Path]) -> None:
    settings, evidence, drop = cams
    secret = make_h264(evidence / "evidence-1_20261120T080000Z.mp4")
    secret_bytes = secret.read_bytes()
    linked = make_h264(evidence / "evidence-1_20261120T081000Z.mp4", seconds=1.5)
    (drop / "dock-2_20261120T090000Z.mp4").symlink_to(secret)
    os.link(linked, drop / "dock-2_20261120T091000Z.mp4")
    (drop / "dangling.mp4").symlink_to(evidence / "nothing-here.mp4")
    own = make_h264(drop / "dock-2_20261120T092000Z.mp4")

    with App.open(settings) as app:
        app.register_cameras()
        watcher = DropWatcher(app.ingestor(), {"dock-2": drop}, settle_seconds=0)
        results = {r.source.name: r for r in watcher.scan_once(now=1.0)}
        segments = app.spool.segments()

    assert set(results) == {
        "dock-2_20261120T090000Z.mp4",
        "dock-2_20261120T091000Z.mp4",
        "dangling.mp4",
        own.name,
    }
    assert results[own.name].ok
    # only dock-2's own file entered the spool
    assert [(s.camera_id, s.s3_key.rsplit("/", 1)[1]) for s in segments] == [
        ("dock-2", "dock-2_20261120T092000Z.mp4")
    ]
    sym = results["dock-2_20261120T090000Z.mp4"]
    assert not sym.ok and sym.reason and "symbolic link" in sym.reason
    assert sym.quarantined_to is not None and sym.quarantined_to.is_symlink()
    assert os.readlink(sym.quarantined_to) == str(secret)  # the link moved, not the target
    assert secret.read_bytes() == secret_bytes and not secret.is_symlink()
    assert "symbolic link" in _sidecar(sym.quarantined_to)["reason"]

    hard = results["dock-2_20261120T091000Z.mp4"]
    assert not hard.ok and hard.reason and "2 hard links" in hard.reason
    assert hard.quarantined_to is not None and hard.quarantined_to.exists()
    assert linked.exists() and os.path.samefile(linked, hard.quarantined_to)

    dangling = results["dangling.mp4"]
    assert dangling.quarantined_to is not None and dangling.quarantined_to.is_symlink()
    assert sorted(p.name for p in drop.iterdir()) == []  # nothing left to retry forever


def test_cli_ingest_refuses_links(
    cams: tuple[Any, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, evidence, _ = cams
    with App.open(settings) as app:
        app.register_cameras()
    cfg = tmp_path / "camvault.toml"
    cfg.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[s3]\nbucket = "{settings.s3.bucket}"\nendpoint_url = "{settings.s3.endpoint_url}"\n'
        f'addressing_style = "path"\n[spool]\ndir = "{settings.spool.dir}"\n'
    )
    secret = make_h264(evidence / "evidence-1_20261120T080000Z.mp4")
    other = make_h264(evidence / "evidence-1_20261120T081000Z.mp4")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sym = inbox / "dock-2_20261120T090000Z.mp4"
    sym.symlink_to(secret)
    hard = inbox / "dock-2_20261120T091000Z.mp4"
    os.link(other, hard)

    code = main(["-c", str(cfg), "ingest", "--camera", "dock-2", "--json", str(sym), str(hard)])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    reasons = {Path(r["file"]).name: r["reason"] for r in out}
    assert "symbolic link" in reasons[sym.name] and "hard links" in reasons[hard.name]
    assert not any(r["ok"] for r in out)
    assert Path(out[0]["quarantined_to"]).is_symlink() and secret.is_file()
    with App.open(settings) as app:
        assert app.spool.segments() == []


def test_a_name_swapped_after_the_check_is_caught(
    cams: tuple[Any, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe reads the checked fd; if the name is swapped for another file before the
    move (TOCTOU), the file that arrived in the spool is quarantined, not admitted."""
    settings, evidence, drop = cams
    victim = make_h264(evidence / "evidence-1_20261120T080000Z.mp4")
    target = make_h264(drop / "dock-2_20261120T090000Z.mp4")
    real_probe = ingest_mod.probe

    def probe_then_swap(path: Path) -> MediaInfo:
        info = real_probe(path)
        os.link(victim, drop / "swap.tmp")  # an attacker replaces the name meanwhile
        os.replace(drop / "swap.tmp", target)
        return info

    monkeypatch.setattr(ingest_mod, "probe", probe_then_swap)
    with App.open(settings) as app:
        app.register_cameras()
        result = app.ingestor().ingest(target, "dock-2")
        assert not result.ok and result.reason and "replaced" in result.reason
        assert app.spool.segments() == []
        assert result.quarantined_to is not None
        assert os.path.samefile(result.quarantined_to, victim)
        mode = stat.S_IMODE(result.quarantined_to.stat().st_mode)
    assert victim.exists()
    assert mode == 0o600


def test_a_bad_file_is_named_in_its_reason_not_the_fd(cams: tuple[Any, Path, Path]) -> None:
    settings, _, drop = cams
    junk = drop / "dock-2_20261120T090000Z.mp4"
    junk.write_bytes(os.urandom(10_000))
    with App.open(settings) as app:
        app.register_cameras()
        result = app.ingestor().ingest(junk, "dock-2")
    assert result.reason and str(junk) in result.reason and "/proc/self/fd" not in result.reason
