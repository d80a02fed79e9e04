"""Fixtures for the fault tests: TCP fault proxies in front of SeaweedFS and PostgreSQL,
and a moto server (Lambda without Docker) for the alert function."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from camvault.embedded import SeaweedFS, free_port
from tests.faults.proxy import FaultProxy
from tests.support.aws import aws_client

ALERT_FUNCTION = "camvault-alert"


@pytest.fixture
def s3_proxy(seaweed: SeaweedFS) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", seaweed.s3_port)) as proxy:
        yield proxy


@pytest.fixture
def pg_proxy(db_url: str) -> Iterator[tuple[FaultProxy, str]]:
    """(proxy, URL of the test database through the proxy)."""
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    host = str(info.get("host") or "")
    if not host or host.startswith("/"):
        pytest.skip("PostgreSQL is reached by Unix socket here; the TCP proxy cannot cut it")
    with FaultProxy((host, int(info.get("port") or 5432))) as proxy:
        info.update(host="127.0.0.1", port=str(proxy.port))
        yield proxy, psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server (AWS-only APIs: Lambda, SNS, SQS, DynamoDB) with Lambda in its
    no-Docker mode: invocations are accepted and answered, the code is not run."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(
            f"{url}/moto-api/config",
            data=json.dumps({"lambda": {"use_docker": False}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=5).read()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="session")
def alert_function(moto_url: str) -> str:
    """The alert function deployed (from ``deploy/alert_function``) into moto."""
    iam = aws_client("iam", moto_url)
    role = iam.create_role(
        RoleName="camvault-alert-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    src = Path(__file__).resolve().parents[2] / "deploy" / "alert_function" / "handler.py"
    with zipfile.ZipFile(buf, "w") as z:
        z.write(src, "handler.py")
    aws_client("lambda", moto_url).create_function(
        FunctionName=ALERT_FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": buf.getvalue()},
    )
    return ALERT_FUNCTION
