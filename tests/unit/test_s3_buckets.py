"""The one rule for creating a bucket (``s3.boto.ensure_bucket``/``create_bucket``), on a
real boto3 client whose answers are stubbed: every branch, including the race in which the
bucket appears between our HEAD and our CreateBucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from camvault.errors import StoragePermanentError
from camvault.s3.boto import ensure_bucket
from camvault.s3.memory import MemoryObjectStore


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.session.Session().client(
        "s3", region_name="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _missing(stub: Stubber) -> None:
    stub.add_client_error("head_bucket", "404", http_status_code=404)


def test_an_existing_bucket_is_not_created_again(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    stub.add_response("head_bucket", {}, {"Bucket": "b"})
    assert ensure_bucket(client, "b", "eu-west-1") is False  # no CreateBucket stubbed


def test_a_missing_bucket_is_created_in_its_region(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    _missing(stub)
    stub.add_response(
        "create_bucket",
        {},
        {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}},
    )
    assert ensure_bucket(client, "b", "eu-west-1") is True


def test_us_east_1_sends_no_location_constraint(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    _missing(stub)
    stub.add_response("create_bucket", {}, {"Bucket": "b"})
    assert ensure_bucket(client, "b", "us-east-1") is True


def test_ours_already_after_a_race_is_success(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    _missing(stub)
    stub.add_client_error("create_bucket", "BucketAlreadyOwnedByYou", http_status_code=409)
    assert ensure_bucket(client, "b", "eu-west-1") is False


def test_a_name_another_account_owns_is_a_permanent_error(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    _missing(stub)
    stub.add_client_error("create_bucket", "BucketAlreadyExists", http_status_code=409)
    with pytest.raises(StoragePermanentError, match="belongs to another account") as info:
        ensure_bucket(client, "b", "eu-west-1")
    assert info.value.code == "BucketAlreadyExists"


def test_a_bucket_we_may_not_see_is_a_permanent_error(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    stub.add_client_error("head_bucket", "AccessDenied", http_status_code=403)
    with pytest.raises(StoragePermanentError) as info:
        ensure_bucket(client, "b", "eu-west-1")
    assert info.value.code == "AccessDenied"


def test_the_twin_keeps_the_same_rule() -> None:
    twin = MemoryObjectStore("b")
    twin.bucket_exists = False
    assert twin.ensure_bucket("eu-west-1") is True
    assert twin.ensure_bucket("eu-west-1") is False
    twin.bucket_taken = True
    with pytest.raises(StoragePermanentError) as info:
        twin.ensure_bucket("eu-west-1")
    assert info.value.code == "BucketAlreadyExists"
