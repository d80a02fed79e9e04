"""Alert de-duplication (pure, fake clock), the webhook sink against a real local HTTP
server, and the multipart sweeper's staleness rule."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from camvault.alerts import Alert, DedupingSink, FanOutSink, WebhookAlertSink, redact_url
from camvault.errors import ConfigError, ServiceUnavailable
from camvault.sweeper import is_stale

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def alert(kind: str, camera: str = "lobby-1", seg: str = "s1", attempts: int = 4) -> Alert:
    return Alert(kind, camera, seg, f"{camera}/k.mp4", "network", "down", attempts, "n1", NOW)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, a: Alert) -> None:
        self.sent.append(a)


def test_an_outage_is_one_alert_per_camera_per_interval_plus_one_recovery() -> None:
    clock = [0.0]
    inner = Recorder()
    sink = DedupingSink(inner, 900, clock=lambda: clock[0])
    for i in range(50):  # a storm: 50 failed rounds of two cameras within 10 minutes
        clock[0] = i * 12
        sink.send(alert("upload_failed", "lobby-1", f"a{i}"))
        sink.send(alert("upload_failed", "yard-2", f"b{i}"))
    assert [(a.kind, a.camera_id) for a in inner.sent] == [
        ("upload_failed", "lobby-1"),
        ("upload_failed", "yard-2"),
    ]
    clock[0] = 1000  # the interval has passed: one reminder, carrying the suppressed count
    sink.send(alert("upload_failed", "lobby-1", "a99"))
    assert inner.sent[-1].extra == {"suppressed": 49}
    sink.send(alert("recovered", "lobby-1"))
    sink.send(alert("recovered", "lobby-1"))  # the second segment landing: no second notice
    sink.send(alert("recovered", "gate-9"))  # never alerted: nothing to recover from
    assert [a.kind for a in inner.sent] == ["upload_failed"] * 3 + ["recovered"]
    assert sink.down_cameras() == ["yard-2"]
    sink.send(alert("conflict"))
    sink.send(alert("conflict"))
    assert [a.kind for a in inner.sent][-2:] == ["conflict", "conflict"]


def test_payload_names_everything_and_has_a_dedupe_key() -> None:
    p = alert("upload_failed").payload()
    assert {"kind", "camera_id", "segment_id", "s3_key", "error_class", "message", "attempts",
            "node", "occurred_at", "dedupe_key"} <= set(p)  # fmt: skip
    assert p["occurred_at"] == NOW.isoformat()
    assert json.loads(json.dumps(p)) == p


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[Any]]]:
    got: list[Any] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers["Content-Length"])
            got.append((self.path, self.headers["Content-Type"], json.loads(self.rfile.read(n))))
            self.send_response(204 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_json_payload(webhook: tuple[str, list[Any]]) -> None:
    url, got = webhook
    WebhookAlertSink(f"{url}/ok").send(alert("upload_failed"))
    assert got[0][0] == "/ok" and got[0][1] == "application/json"
    assert got[0][2]["camera_id"] == "lobby-1" and got[0][2]["attempts"] == 4
    with pytest.raises(ServiceUnavailable, match="500"):
        WebhookAlertSink(f"{url}/broken").send(alert("upload_failed"))
    with pytest.raises(ConfigError, match="http"):
        WebhookAlertSink("ftp://example.com/x")


def test_sweeper_staleness_rule() -> None:
    hour = timedelta(hours=1)
    fresh, old = NOW - timedelta(seconds=5), NOW - 2 * hour
    assert is_stale(fresh, {"uploading"}, now=NOW, max_age=hour) is None  # in flight here
    assert is_stale(old, {"uploading", "queued"}, now=NOW, max_age=hour) is None
    assert is_stale(fresh, {"queued"}, now=NOW, max_age=hour) == "our segment, not being uploaded"
    assert is_stale(fresh, {"committed"}, now=NOW, max_age=hour) is not None
    assert is_stale(fresh, set(), now=NOW, max_age=hour) is None  # maybe another node's
    assert is_stale(old, set(), now=NOW, max_age=hour) == "older than 3600 s"


def test_webhook_url_never_appears_in_errors_or_logs(
    webhook: tuple[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """The path/query of a webhook URL is its credential (Slack, Teams …)."""
    url, _ = webhook
    secret = "T0SECRET/B0SECRET/xoxsecret"
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there: connection refused
    targets = [
        f"{url}/broken/{secret}?token={secret}",
        f"http://u:{secret.replace('/', '')}@127.0.0.1:{dead_port}/{secret}",
        f"http://127.0.0.1:{secret}/x",  # unparsable: http.client's InvalidURL quotes it
    ]
    for target in targets:
        sink = WebhookAlertSink(target)
        with pytest.raises(ServiceUnavailable) as exc:
            sink.send(alert("upload_failed"))
        assert secret not in str(exc.value) and "T0SECRETB0" not in str(exc.value)
        assert exc.value.__cause__ is None and exc.value.__suppress_context__
        assert secret not in repr(sink)
        with caplog.at_level(logging.DEBUG):
            FanOutSink([sink]).send(alert("upload_failed"))  # logs the traceback
    assert "webhook http://127.0.0.1:" in caplog.text
    assert secret not in caplog.text and "T0SECRET" not in caplog.text
    with pytest.raises(ConfigError) as cfg:
        WebhookAlertSink(f"ftp://example.com/{secret}")
    assert secret not in str(cfg.value)
    assert redact_url(f"https://user:pw{secret[:8]}@hooks.example:8443/{secret}") == (
        "https://hooks.example:8443/…"
    )
