"""A moto server in this process (``ThreadedMotoServer``) for AWS-only S3 behaviour:
Glacier transitions in lifecycle rules, storage classes and RestoreObject. The
``moto_endpoint`` fixture is a plugin (``pytest_plugins`` in ``tests/conftest.py``); test
modules import only the plain helpers below."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "eu-west-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def moto_client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS
    )


def new_bucket_name() -> str:
    return f"cv-{uuid.uuid4().hex[:20]}"
