"""camvault alert function (AWS Lambda, Python 3.12).

camvault invokes it asynchronously (``InvocationType="Event"``) with a JSON alert::

    {"kind": "upload_failed" | "recovered" | "conflict" | "spool_low" | "spool_space_ok",
     "camera_id": ..., "segment_id": ...,
     "s3_key": ..., "error_class": ..., "message": ..., "attempts": 4, "node": ...,
     "occurred_at": "2026-11-20T08:00:00+00:00", "extra": {...}, "dedupe_key": "..."}

It formats a short human message and publishes it to an SNS topic (email/SMS subscribers,
``TOPIC_ARN``) and/or POSTs the alert to a webhook (``WEBHOOK_URL``). Lambda retries an
asynchronous event that failed and may deliver one twice, so delivery is idempotent on
``dedupe_key``: a conditional write to a DynamoDB table (``DEDUPE_TABLE``, items expire by
TTL) claims the key first; a duplicate is acknowledged without sending. If sending fails
the claim is released and the error raised, so Lambda's own retry can send it.

Standard library + boto3 (in the Lambda runtime) only; endpoints come from the usual AWS
configuration (``AWS_ENDPOINT_URL`` works for local tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import urllib.parse
import urllib.request
from typing import Any

import boto3

log = logging.getLogger()
log.setLevel(logging.INFO)

REQUIRED = ("kind", "camera_id", "s3_key", "node", "occurred_at")
NODE_KINDS = ("spool_low", "spool_space_ok")  # about a node's spool disk: no camera, no key
_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    if service not in _clients:
        _clients[service] = boto3.client(service)
    return _clients[service]


def dedupe_key(event: dict[str, Any]) -> str:
    key = event.get("dedupe_key")
    if isinstance(key, str) and key:
        return key
    return hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()


def format_alert(event: dict[str, Any]) -> tuple[str, str]:
    """(subject ≤ 100 chars, body) for e-mail/SMS."""
    kind = event["kind"]
    cam = event["camera_id"]
    if kind == "recovered":
        subject = f"[camvault] {cam}: archiving recovered"
        lead = f"Camera {cam} is archiving again on {event['node']}."
    elif kind == "conflict":
        subject = f"[camvault] {cam}: conflicting segment held"
        lead = f"A segment of camera {cam} conflicts with what is already archived."
    elif kind == "spool_low":  # node-wide: camera_id is empty
        subject = f"[camvault] {event['node']}: spool disk low"
        lead = (
            f"The spool disk on {event['node']} is below its minimum free space. Nothing is "
            "deleted; recording and ingest stop when it is full. Check S3 connectivity."
        )
    elif kind == "spool_space_ok":
        subject = f"[camvault] {event['node']}: spool disk space recovered"
        lead = f"The spool disk on {event['node']} is above its minimum free space again."
    else:
        subject = f"[camvault] {cam}: upload failing ({event.get('error_class') or 'error'})"
        lead = (
            f"Camera {cam}: a segment could not be uploaded after "
            f"{event.get('attempts', '?')} attempt(s). It stays in the spool on "
            f"{event['node']} and is retried automatically."
        )
    extra = event.get("extra") or {}
    lines = [
        lead,
        "",
        f"key:        {event['s3_key']}",
        f"segment:    {event.get('segment_id', '')}",
        f"error:      {event.get('error_class', '')} {event.get('message', '')}".rstrip(),
        f"node:       {event['node']}",
        f"time:       {event['occurred_at']}",
    ]
    if extra.get("suppressed"):
        lines.append(f"suppressed: {extra['suppressed']} similar alert(s) since the last one")
    return subject[:100], "\n".join(lines)


def _claim(table: str, key: str, ttl_seconds: int) -> bool:
    ddb = _client("dynamodb")
    try:
        ddb.put_item(
            TableName=table,
            Item={"dedupe_key": {"S": key}, "expires_at": {"N": str(int(time.time()) + ttl_seconds)}},
            ConditionExpression="attribute_not_exists(dedupe_key)",
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _release(table: str, key: str) -> None:
    _client("dynamodb").delete_item(TableName=table, Key={"dedupe_key": {"S": key}})


def _post(url: str, event: dict[str, Any], timeout: float = 5.0) -> None:
    req = urllib.request.Request(
        url,
        data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "camvault-alert-function"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # https URL from the template
            resp.read()
    except Exception as exc:
        # the URL (often the webhook's secret) must not reach the logs: scheme://host/… only
        parts = urllib.parse.urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname or '?'}/…"
        code = getattr(exc, "code", None)
        raise ConnectionError(f"webhook {where} failed: {code or type(exc).__name__}") from None


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    node_wide = event.get("kind") in NODE_KINDS
    missing = [
        k for k in REQUIRED if not event.get(k) and not (node_wide and k in ("camera_id", "s3_key"))
    ]
    if missing:
        # a malformed event will not get better by retrying: acknowledge and log it
        log.error("ignoring malformed alert (missing %s): %s", ", ".join(missing), event)
        return {"status": "invalid", "missing": missing}
    topic = os.environ.get("TOPIC_ARN", "")
    webhook = os.environ.get("WEBHOOK_URL", "")
    table = os.environ.get("DEDUPE_TABLE", "")
    key = dedupe_key(event)
    if table and not _claim(table, key, int(os.environ.get("DEDUPE_TTL_SECONDS", "86400"))):
        log.info("duplicate delivery of %s: already sent", key)
        return {"status": "duplicate", "dedupe_key": key}
    subject, body = format_alert(event)
    sent = []
    try:
        if topic:
            _client("sns").publish(
                TopicArn=topic,
                Subject=subject,
                Message=body,
                MessageAttributes={
                    "kind": {"DataType": "String", "StringValue": str(event["kind"])},
                    "camera_id": {"DataType": "String", "StringValue": str(event["camera_id"])},
                },
            )
            sent.append("sns")
        if webhook:
            _post(webhook, {**event, "subject": subject, "text": body})
            sent.append("webhook")
    except Exception:
        if table:
            _release(table, key)  # let Lambda's retry deliver it
        raise
    log.info("alert %s sent via %s", key, ", ".join(sent) or "nothing (no target configured)")
    return {"status": "sent", "dedupe_key": key, "via": sent}
