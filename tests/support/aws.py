"""Clients for moto's AWS services and decoding of what a fault proxy captured."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.faults.proxy import FaultProxy


def aws_client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def http_requests(raw: bytes) -> list[tuple[str, str, dict[str, str], bytes]]:
    """Split captured client→server bytes into (method, path, headers, body)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        out.append((method, path, headers, rest[:n]))
        raw = rest[n:]
    return out


def lambda_invocations(proxy: FaultProxy) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(headers, JSON payload) of every Lambda Invoke request that went through ``proxy``."""
    calls = []
    for buf in proxy.captured:
        for method, path, headers, body in http_requests(bytes(buf)):
            if method == "POST" and path.endswith("/invocations"):
                calls.append((headers, json.loads(body)))
    return calls
