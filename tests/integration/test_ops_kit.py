"""The ops kit in ``deploy/``, each file checked by the tool that owns its format:
Prometheus rules by ``promtool`` (syntax + rule unit tests), the Grafana dashboard against
a live ``/metrics`` scrape of a real node, systemd units by ``systemd-analyze verify``,
the compose file by parsing it and loading each node's environment into ``Settings``.
(No container daemon here: the images are not built — the README says so.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from camvault.app import App
from camvault.config import load_settings
from camvault.fleet.leases import LeaseTiming
from camvault.fleet.node import Node
from camvault.fleet.store import FleetStore

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC_RE = re.compile(r"\b(camvault_[a-z0-9_]+)\b")


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip(
            "promtool not installed (Debian package prometheus; ./scripts/test installs it)"
        )
    return exe


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    exe = _promtool()
    rules = DEPLOY / "prometheus"
    check = subprocess.run(
        [exe, "check", "rules", "camvault-rules.yml"], cwd=rules, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [exe, "test", "rules", "camvault-rules.test.yml"], cwd=rules, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr
    groups = yaml.safe_load((rules / "camvault-rules.yml").read_text())["groups"]
    names = {r["alert"] for g in groups for r in g["rules"]}
    tested = set(re.findall(r"alertname: (\w+)", (rules / "camvault-rules.test.yml").read_text()))
    assert names == tested  # every rule has a unit test


def _exported(text: str) -> set[str]:
    """Sample names a Prometheus server would store from this exposition text."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_dashboard_queries_only_metrics_a_node_exports(make_settings: Any) -> None:
    """Scrape a real node's /metrics (API + recorder + lease metrics, after one lease
    round against PostgreSQL) and check every panel's query against it."""
    from camvault.api.server import start_api

    settings = make_settings(api={"port": 0}, node="ops-node")
    with App.open(settings) as app:
        store = FleetStore(app.connector)
        store.upsert_camera("cam-ops", url="rtsp://127.0.0.1:9/none")
        node = Node("ops-node", store, lambda *a: None, LeaseTiming(6, 2))  # type: ignore[arg-type,return-value]
        node.tick()  # registers the node
        node.tick()  # renew, claim: the lease series get their first samples
        pipeline = app.pipeline()  # the upload counters come from its tally
        server, stop = start_api(app, host="127.0.0.1", port=0, tally=lambda: pipeline.tally)
        try:
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
                text = resp.read().decode()
        finally:
            stop()
    exported = _exported(text)
    assert 'camvault_lease_claims_total{node="ops-node"} 1.0' in text
    assert re.search(r'camvault_spool_depth\{node="ops-node"\} ', text), text
    assert re.search(r'camvault_spool_conflicts\{node="ops-node"\} 0\.0', text), text
    dash = json.loads((DEPLOY / "grafana" / "camvault-fleet.json").read_text())
    assert dash["panels"] and dash["uid"]
    queried: set[str] = set()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            queried |= set(METRIC_RE.findall(target["expr"]))
    missing = queried - exported
    assert not missing, f"dashboard queries metrics no node exports: {sorted(missing)}"
    # and the alert rules query only real metrics too
    rules = (DEPLOY / "prometheus" / "camvault-rules.yml").read_text()
    assert set(METRIC_RE.findall(rules)) - exported == set()


@pytest.mark.parametrize("unit", ["camvault-node.service", "camvault-api.service"])
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed")
    text = (DEPLOY / "systemd" / unit).read_text()
    # verify checks that ExecStart exists: point it at this checkout's camvault
    camvault = Path(sys.executable).with_name("camvault")
    assert "/opt/camvault/.venv/bin/camvault" in text
    (tmp_path / unit).write_text(text.replace("/opt/camvault/.venv/bin/camvault", str(camvault)))
    r = subprocess.run([exe, "verify", str(tmp_path / unit)], capture_output=True, text=True)
    assert r.returncode == 0 and "Unknown" not in r.stderr, r.stderr
    sub = re.search(r"ExecStart=\S+ (.*)", text)
    assert sub is not None  # and the sub-command line parses with camvault's own parser
    from camvault.cli import build_parser

    build_parser().parse_args(sub.group(1).split())


def test_compose_wiring_and_containerfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no camvault.toml here: the environment alone
    root = DEPLOY.parent
    compose = yaml.safe_load((DEPLOY / "container" / "compose.yaml").read_text())
    services = compose["services"]
    nodes = {k: v for k, v in services.items() if k.startswith("node")}
    assert len(nodes) >= 2 and {"postgres", "seaweedfs", "migrate", "api"} <= set(services)
    ids = set()
    for name, svc in nodes.items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        settings = load_settings(None, environ=env)
        ids.add(settings.node)
        host = re.match(r"postgresql://[^@]+@([^:/]+)", settings.database.url)
        assert host and host.group(1) in services, settings.database.url
        s3 = re.match(r"https?://([^:/]+)", settings.s3.endpoint_url or "")
        assert s3 and s3.group(1) in services
        assert set(svc["depends_on"]) <= set(services)
        assert svc["volumes"] and svc["command"] == ["run"], name
    assert len(ids) == len(nodes)  # every node its own id
    spools = [v["volumes"][0].split(":")[0] for v in nodes.values()]
    assert len(set(spools)) == len(spools) and set(spools) <= set(compose["volumes"])
    mounted = DEPLOY / "container" / "seaweedfs"
    assert (mounted / "security.toml").exists() and json.loads((mounted / "s3.json").read_text())
    # the Containerfile copies files that exist and runs the console script pyproject defines
    cf = (DEPLOY / "container" / "Containerfile").read_text()
    for src in re.findall(r"^COPY (.+) \S+$", cf, re.MULTILINE):
        for part in src.split():
            assert (root / part).exists(), part
    assert 'ENTRYPOINT ["camvault"]' in cf
    assert 'camvault = "camvault.cli:main"' in (root / "pyproject.toml").read_text()
