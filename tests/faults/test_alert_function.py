"""The Lambda alert function from ``deploy/`` against moto (SNS, SQS, DynamoDB) and a
local webhook; the CloudFormation/SAM template validated by cfn-lint."""

from __future__ import annotations

import http.server
import importlib.util
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.aws import aws_client

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EVENT = {
    "kind": "upload_failed",
    "camera_id": "lobby-1",
    "segment_id": "abc123",
    "s3_key": "lobby-1/2026/11/20/lobby-1_20261120T080000Z.mp4",
    "error_class": "network",
    "message": "S3 PUT failed: network",
    "attempts": 4,
    "node": "node-a",
    "occurred_at": "2026-11-20T08:05:00+00:00",
    "extra": {},
    "dedupe_key": "upload_failed:lobby-1:abc123:4",
}


@pytest.fixture
def handler(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for var, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    spec = importlib.util.spec_from_file_location(
        "alert_handler", DEPLOY / "alert_function" / "handler.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def topic_queue_table(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    sns, sqs, ddb = (aws_client(s, moto_url) for s in ("sns", "sqs", "dynamodb"))
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "dedupe_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "dedupe_key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("TOPIC_ARN", topic)
    monkeypatch.setenv("DEDUPE_TABLE", name)
    return topic, queue, name


def _messages(moto_url: str, queue: str) -> list[dict[str, Any]]:
    sqs = aws_client("sqs", moto_url)
    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def test_publishes_once_even_when_delivered_twice(
    handler: ModuleType, topic_queue_table: tuple[str, str, str], moto_url: str
) -> None:
    _, queue, _ = topic_queue_table
    first = handler.lambda_handler(dict(EVENT))
    second = handler.lambda_handler(dict(EVENT))  # Lambda's at-least-once redelivery
    assert first["status"] == "sent" and first["via"] == ["sns"]
    assert second["status"] == "duplicate"
    msgs = _messages(moto_url, queue)
    assert len(msgs) == 1
    assert msgs[0]["Subject"] == "[camvault] lobby-1: upload failing (network)"
    body = msgs[0]["Message"]
    assert EVENT["s3_key"] in body and "4 attempt(s)" in body and "node-a" in body
    assert msgs[0]["MessageAttributes"]["camera_id"]["Value"] == "lobby-1"
    recovered = {**EVENT, "kind": "recovered", "dedupe_key": "recovered:lobby-1:abc123:4"}
    assert handler.lambda_handler(recovered)["status"] == "sent"
    assert _messages(moto_url, queue)[0]["Subject"] == "[camvault] lobby-1: archiving recovered"


def test_malformed_event_is_acknowledged_not_retried(handler: ModuleType) -> None:
    assert handler.lambda_handler({"kind": "upload_failed"}) == {
        "status": "invalid",
        "missing": ["camera_id", "s3_key", "node", "occurred_at"],
    }


def test_webhook_target_and_release_on_failure(
    handler: ModuleType,
    topic_queue_table: tuple[str, str, str],
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got: list[Any] = []
    status = [500]

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("TOPIC_ARN")
        monkeypatch.setenv("WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
        with pytest.raises(OSError) as down:
            handler.lambda_handler(dict(EVENT))  # webhook down: raise so Lambda retries …
        assert "/hook" not in str(down.value) and "127.0.0.1" in str(down.value)
        status[0] = 200
        assert handler.lambda_handler(dict(EVENT))["via"] == ["webhook"]  # … and it goes out
        assert handler.lambda_handler(dict(EVENT))["status"] == "duplicate"
        assert len(got) == 2 and got[1]["camera_id"] == "lobby-1" and "subject" in got[1]
    finally:
        server.shutdown()
        server.server_close()


def test_template_passes_cfn_lint() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(DEPLOY / "template.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_spool_disk_alerts_read_as_such(handler: ModuleType) -> None:
    """The node-wide spool alerts (camera_id empty) get their own subject and lead."""
    from camvault.alerts import Alert
    from camvault.diskspace import LOW_KIND, OK_KIND, SpaceWatcher

    sent: list[Alert] = []

    class Sink:
        def send(self, alert: Alert) -> None:
            sent.append(alert)

    watcher = SpaceWatcher(Path("/"), 2**62, Sink(), node="n1")  # always "low"
    watcher.check()
    watcher.check()
    watcher.min_free_bytes = 0
    watcher.check()
    assert [a.kind for a in sent] == [LOW_KIND, OK_KIND]
    low, ok = (handler.format_alert(a.payload()) for a in sent)
    assert "spool disk low" in low[0] and "Nothing is deleted" in low[1]
    assert "recovered" in ok[0]
    assert sent[0].payload()["dedupe_key"] != sent[1].payload()["dedupe_key"]
    # not "malformed" for want of a camera: no target configured here, so sent via nothing
    for alert in sent:
        assert handler.lambda_handler(json.loads(json.dumps(alert.payload())))["status"] == "sent"
