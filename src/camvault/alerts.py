"""Alerts to operators when a segment cannot be archived.

``AlertSink`` is the narrow interface. ``LogAlertSink`` is always on; ``LambdaAlertSink``
(``Invoke`` with ``InvocationType="Event"``: fire and forget, Lambda queues and retries
delivery itself) and ``WebhookAlertSink`` (JSON POST) are added when configured;
``FanOutSink`` sends to all of them. ``DedupingSink`` wraps the lot so an outage is *one*
alert per camera per interval plus one recovery notice, not a storm: while a camera is
"down", further failures only bump a counter that rides along on the next alert.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from camvault.errors import ConfigError, ServiceUnavailable

log = logging.getLogger("camvault.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    """One operator alert about a segment (``kind``: upload_failed, recovered or conflict), with
    everything needed to find it: camera, segment, key, error class, attempts, node."""

    kind: str  # "upload_failed" | "recovered" | "conflict"
    camera_id: str
    segment_id: str
    s3_key: str
    error_class: str
    message: str
    attempts: int
    node: str
    occurred_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        d = asdict(self)
        d["occurred_at"] = self.occurred_at.isoformat()
        d["dedupe_key"] = f"{self.kind}:{self.camera_id}:{self.segment_id}:{self.attempts}"
        return d


class AlertSink(Protocol):
    """Where operator alerts go. ``send`` delivers one alert, best effort; the pipeline sends
    through ``FanOutSink``/``DedupingSink``, which log and contain a sink's failure, so
    archiving never stops for an alert."""

    def send(self, alert: Alert) -> None: ...


class LogAlertSink:
    """Writes every alert as one WARNING log line; always on, beneath any Lambda/webhook sink."""

    def send(self, alert: Alert) -> None:
        log.warning(
            "ALERT %s camera=%s key=%s attempts=%d error=%s: %s",
            alert.kind,
            alert.camera_id,
            alert.s3_key,
            alert.attempts,
            alert.error_class,
            alert.message,
        )


class FanOutSink:
    """Send to every sink; one failing sink must not stop the others or the uploader."""

    def __init__(self, sinks: list[AlertSink]) -> None:
        self._sinks = sinks

    def send(self, alert: Alert) -> None:
        for sink in self._sinks:
            try:
                sink.send(alert)
            except Exception:
                log.exception("alert sink %s failed", type(sink).__name__)


class LambdaAlertSink:
    """``lambda:Invoke`` (asynchronous) of the alert function with the JSON payload."""

    def __init__(self, client: Any, function: str) -> None:
        self._client = client
        self._function = function

    def send(self, alert: Alert) -> None:
        try:
            r = self._client.invoke(
                FunctionName=self._function,
                InvocationType="Event",
                Payload=json.dumps(alert.payload(), default=str).encode(),
            )
        except Exception as exc:  # botocore errors: the boundary is here
            raise ServiceUnavailable(f"Lambda invoke {self._function} failed: {exc}") from exc
        status = int(r.get("StatusCode", 0))
        if status != 202:
            raise ServiceUnavailable(f"Lambda invoke {self._function} answered {status}")


def redact_url(url: str) -> str:
    """``scheme://host/…``: a webhook URL's path, query and user info are often its secret
    (Slack, Teams, …), so only the scheme and host ever reach a log or an exception."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:  # unparsable port or netloc: name nothing
        return "(unparsable URL)"
    return f"{parts.scheme or '?'}://{host}/…"


class WebhookAlertSink:
    """POST the JSON payload; any 2xx is success."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"alerts.webhook_url must be an http(s) URL, not {redact_url(url)!r}")
        self._url = url
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"WebhookAlertSink({redact_url(self._url)!r})"

    def send(self, alert: Alert) -> None:
        req = urllib.request.Request(
            self._url,
            data=json.dumps(alert.payload(), default=str).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "camvault-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            # InvalidURL's text quotes the URL, and a chained HTTPError carries it (.url):
            # name only the class, and `from None`
            raise ServiceUnavailable(
                f"webhook {redact_url(self._url)} failed: {_reason(exc)}"
            ) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc.reason).__name__}: {getattr(exc.reason, 'strerror', None) or 'error'}"
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or 'error'}"


class DedupeStore(Protocol):
    """Shared de-duplication state (``camvault.fleet.alert_state.PgAlertState``): the
    alert to send (possibly annotated) or None to suppress it."""

    def filter(self, alert: Alert, interval_seconds: float) -> Alert | None: ...
    def down_cameras(self) -> list[str]: ...


@dataclass
class _CameraState:
    last_sent: float
    suppressed: int = 0


class DedupingSink:
    """At most one failure alert per camera per ``interval_seconds``; one ``recovered``
    notice when a camera that was alerted on archives again. Conflicts always pass: each
    one needs an operator's decision."""

    def __init__(
        self,
        inner: AlertSink,
        interval_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        store: DedupeStore | None = None,
    ) -> None:
        self._inner = inner
        self._store = store  # None: state in this process's memory
        self._interval = interval_seconds
        self._clock = clock
        self._down: dict[str, _CameraState] = {}
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        if self._store is not None:
            try:
                shared = self._store.filter(alert, self._interval)
            except ServiceUnavailable:
                shared = alert  # catalog down: better a duplicate alert than none
            if shared is not None:
                self._inner.send(shared)
            return
        out: Alert | None = alert
        with self._lock:
            now = self._clock()
            state = self._down.get(alert.camera_id)
            if alert.kind == "recovered":
                if state is None:
                    out = None  # the failure was never reported: nothing to recover from
                else:
                    del self._down[alert.camera_id]
                    out = _with_extra(alert, suppressed=state.suppressed)
            elif alert.kind == "upload_failed":
                if state is None:
                    self._down[alert.camera_id] = _CameraState(now)
                elif now - state.last_sent < self._interval:
                    state.suppressed += 1
                    out = None
                else:
                    out = _with_extra(alert, suppressed=state.suppressed)
                    state.last_sent, state.suppressed = now, 0
        if out is not None:
            self._inner.send(out)

    def down_cameras(self) -> list[str]:
        if self._store is not None:
            return self._store.down_cameras()
        with self._lock:
            return sorted(self._down)


def _with_extra(alert: Alert, **extra: Any) -> Alert:
    return replace(alert, extra={**alert.extra, **extra})
