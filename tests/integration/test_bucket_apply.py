"""`camvault bucket apply` against moto (accepts everything AWS does) and SeaweedFS
(evaluates bucket policies; refuses transitions and public access blocks)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from camvault import lifecycle
from camvault.bucket import BucketAdmin, apply_bucket
from camvault.cli import main
from camvault.config import LifecycleSettings, S3Settings
from camvault.errors import StoragePermanentError
from camvault.s3.boto import create_bucket
from camvault.storage import S3ObjectStore, make_client
from camvault.wiring import bucket_spec, retention_policy
from tests.support.moto_s3 import (
    CREDENTIALS,
    REGION,
    moto_client,
    new_bucket_name,
)

LC = LifecycleSettings.model_validate(
    {
        "transition_after_days": 30,
        "transition_storage_class": "GLACIER",
        "expire_after_days": 365,
        "cameras": {"hall": {"expire_after_days": 90}},
        "deny_insecure_transport": "on",
    }
)


def write_config(path: Path, bucket: str, endpoint: str, region: str, lifecycle: str) -> Path:
    path.write_text(
        f'[s3]\nbucket = "{bucket}"\nregion = "{region}"\nendpoint_url = "{endpoint}"\n'
        f'prefix = "cctv"\naddressing_style = "path"\n'
        f'[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n'
        f"[lifecycle]\n{lifecycle}"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    for var in list(os.environ):
        if var.startswith("CAMVAULT_") and not var.startswith("CAMVAULT_TEST_"):
            monkeypatch.delenv(var)


def test_full_apply_on_moto_then_nothing_to_change(
    moto_endpoint: str,
    moto_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = new_bucket_name()
    cfg = write_config(
        tmp_path / "c.toml",
        bucket,
        moto_endpoint,
        REGION,
        'transition_after_days = 30\ntransition_storage_class = "GLACIER"\n'
        'expire_after_days = 365\ndeny_insecure_transport = "on"\n'
        "[lifecycle.cameras.hall]\nexpire_after_days = 90\n",
    )
    s3 = moto_client(moto_endpoint)
    # a rule somebody else keeps in the bucket must survive our apply
    code, out, err = run(capsys, "--config", str(cfg), "bucket", "apply", "--dry-run")
    assert code == 0, err
    assert "bucket: would set — create in eu-west-1" in out
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_bucket(Bucket=bucket)  # dry run created nothing

    code, out, err = run(capsys, "--config", str(cfg), "bucket", "apply")
    assert code == 0, out + err
    assert "+ bucket: created" in out and "+ lifecycle rule camvault-default-archive" in out

    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"] == (
        lifecycle.encryption_document()
    )
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == (
        lifecycle.PUBLIC_ACCESS_BLOCK
    )
    expected_rules = lifecycle.lifecycle_rules(retention_policy(LC), "cctv/")
    got_rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert sorted(got_rules, key=lambda r: r["ID"]) == sorted(expected_rules, key=lambda r: r["ID"])
    assert {r["ID"] for r in got_rules} == {
        "camvault-abort-multipart",
        "camvault-default-expire",
        "camvault-default-archive",
        "camvault-camera-hall-expire",
        "camvault-camera-hall-archive",
        "camvault-exports-expire",  # clip exports: [lifecycle] export_expire_days
    }
    exports_rule = next(r for r in got_rules if r["ID"] == "camvault-exports-expire")
    assert exports_rule["Filter"] == {"Prefix": "cctv/exports/"}
    assert exports_rule["Expiration"] == {"Days": LC.export_expire_days}
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy == {
        "Version": "2012-10-17",
        "Statement": lifecycle.policy_statements(bucket, region=REGION),
    }

    code, out, err = run(capsys, "--config", str(cfg), "bucket", "apply", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["changed"] is False and report["partial"] is False
    assert {c["action"] for c in report["changes"]} == {"unchanged"}
    code, out, _ = run(capsys, "--config", str(cfg), "bucket", "apply")
    assert "nothing to change" in out


def test_foreign_rules_and_statements_survive_and_changes_are_updates(
    moto_endpoint: str,
) -> None:
    s3 = moto_client(moto_endpoint)
    bucket = new_bucket_name()
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    theirs = {
        "ID": "logs-expiry",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 7},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})
    s3_settings = S3Settings(bucket=bucket, region=REGION, endpoint_url=moto_endpoint)
    admin = BucketAdmin(s3, bucket)
    first = apply_bucket(admin, bucket_spec(s3_settings, LC))
    assert not first.partial
    ids = {r["ID"] for r in admin.get_lifecycle()}
    assert "logs-expiry" in ids and "camvault-default-expire" in ids

    longer = LC.model_copy(update={"expire_after_days": 400})
    second = apply_bucket(admin, bucket_spec(s3_settings, longer))
    by_item = {c.item: c.action for c in second.changes}
    assert by_item["lifecycle rule camvault-default-expire"] == "updated"
    assert by_item["lifecycle rule camvault-abort-multipart"] == "unchanged"
    assert by_item["encryption"] == "unchanged"
    rules = {r["ID"]: r for r in admin.get_lifecycle()}
    assert rules["camvault-default-expire"]["Expiration"] == {"Days": 400}
    assert rules["logs-expiry"]["Expiration"] == {"Days": 7}


# SeaweedFS --------------------------------------------------------------------------------
@pytest.fixture
def seaweed_config(tmp_path: Path, seaweed: Any, bucket: str, aws_env: None) -> Path:
    return write_config(
        tmp_path / "c.toml",
        bucket,
        seaweed.endpoint_url,
        "us-east-1",
        'transition_after_days = 30\ntransition_storage_class = "GLACIER"\n'
        "expire_after_days = 365\n",
    )


def test_partial_apply_on_seaweedfs_is_reported_precisely(
    seaweed_config: Path, s3: Any, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--config", str(seaweed_config), "bucket", "apply")
    assert code == 1, out + err
    assert "NOT APPLIED" in err
    lines = {ln.strip() for ln in out.splitlines()}
    rejected = [ln for ln in lines if ln.startswith("✗")]
    assert sorted(ln.split(":")[0] for ln in rejected) == [
        "✗ lifecycle rule camvault-default-archive",
        "✗ policy statement CamvaultDenyInsecureTransport",
        "✗ public-access-block",
    ]
    archive = next(ln for ln in rejected if "camvault-default-archive" in ln)
    assert "transition to GLACIER after 30 days" in archive and "NotImplemented" in archive
    tls = next(ln for ln in rejected if "DenyInsecureTransport" in ln)
    assert "plain HTTP" in tls

    # the rest is in force
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {
        "camvault-default-expire",
        "camvault-abort-multipart",
        "camvault-exports-expire",  # Expiration rules work on SeaweedFS
    }
    assert rules["camvault-default-expire"]["Expiration"] == {"Days": 365}
    assert rules["camvault-default-expire"]["Filter"] == {"Prefix": "cctv/"}
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    sids = {
        s["Sid"] for s in json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    }
    assert sids == {"CamvaultDenyNonAES256", "CamvaultDenyMissingSSE"}

    code, out, _ = run(
        capsys, "--config", str(seaweed_config), "bucket", "apply", "--allow-partial", "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["partial"] is True and report["changed"] is False


def test_policy_is_enforced_and_multipart_still_works(
    seaweed_config: Path,
    s3: Any,
    bucket: str,
    seaweed: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "--config", str(seaweed_config), "bucket", "apply", "--allow-partial")
    # SeaweedFS evaluates bucket policies: asking for another encryption is refused
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_object(Bucket=bucket, Key="cctv/kms", Body=b"x", ServerSideEncryption="aws:kms")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    # without a header: refused where s3:ObjectCreationOperation is known (AWS); SeaweedFS
    # does not set that key, so the bucket's default encryption applies instead
    try:
        s3.put_object(Bucket=bucket, Key="cctv/plain", Body=b"x")
    except botocore.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied"
    else:
        assert s3.head_object(Bucket=bucket, Key="cctv/plain")["ServerSideEncryption"] == "AES256"

    # camvault's own multipart path (s3transfer: create, parts without SSE header, complete)
    settings = S3Settings(
        bucket=bucket,
        endpoint_url=seaweed.endpoint_url,
        addressing_style="path",
        multipart_threshold_mb=5,
        multipart_chunk_mb=5,
    )
    store = S3ObjectStore(make_client(settings), settings)
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    store.put_file(
        big,
        "cctv/big.mp4",
        metadata={"camera": "x"},
        size=big.stat().st_size,
        sha256_b64="",
        crc32_b64="",
        if_none_match=False,
    )
    head = s3.head_object(Bucket=bucket, Key="cctv/big.mp4")
    assert head["ContentLength"] == big.stat().st_size
    assert head["ServerSideEncryption"] == "AES256"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_bucket_name_another_account_owns_is_refused_everywhere(moto_endpoint: str) -> None:
    """One rule for "already there" (``s3.boto.create_bucket``), on a real server with two
    accounts: ours → not an error (False), another account's → ``StoragePermanentError``
    for `bucket apply` and start-up alike."""
    name = new_bucket_name()
    ours = moto_client(moto_endpoint)
    assert BucketAdmin(ours, name).create(REGION) is True
    assert BucketAdmin(ours, name).create(REGION) is False  # BucketAlreadyOwnedByYou
    sts = boto3.session.Session().client(
        "sts", endpoint_url=moto_endpoint, region_name=REGION, **CREDENTIALS
    )
    creds = sts.assume_role(  # moto: the role's keys act as that other account
        RoleArn="arn:aws:iam::111111111111:role/other", RoleSessionName="other-account"
    )["Credentials"]
    theirs = boto3.session.Session().client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    with pytest.raises(StoragePermanentError, match="another account") as info:
        BucketAdmin(theirs, name).create(REGION)
    assert info.value.code == "BucketAlreadyExists"
    with pytest.raises(StoragePermanentError) as info:
        create_bucket(theirs, name, REGION)
    assert info.value.code == "BucketAlreadyExists"
    # the bucket is still ours, untouched
    assert ours.get_bucket_location(Bucket=name)["LocationConstraint"] == REGION
