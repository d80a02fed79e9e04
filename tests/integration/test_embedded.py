"""The embedded servers (camvault.embedded) and the SeaweedFS 4.48 S3 behaviour we rely on.

SeaweedFS 4.48 findings (details and error codes in docs/seaweedfs.md; the ones the design
relies on are asserted in the ``test_contract_*`` tests below so an upgrade that changes
them fails here first):
- PUT If-None-Match: * → 412 PreconditionFailed if the key exists (also on
  CompleteMultipartUpload); 8 racing writers → exactly one wins.
- x-amz-checksum-sha256 / -crc32: a wrong value → 400 BadDigest (nothing stored); HEAD/GET
  with ChecksumMode=ENABLED return the stored checksum. botocore's default CRC32 is a plain
  header over http://; over https:// its aws-chunked trailer works on put_object and
  upload_part, but such objects are then served with Content-Encoding: aws-chunked (bug).
- upload_file multipart keeps SSE AES256, StorageClass and metadata; list/abort multipart work.
- HEAD returns StorageClass only when the PUT set it (AWS omits STANDARD): treat absent as STANDARD.
- put_bucket_encryption and lifecycle Expiration/AbortIncompleteMultipartUpload work; a
  Transition rule and put_public_access_block → 501 NotImplemented. Bucket policies ARE
  enforced: the usual "Deny aws:SecureTransport=false" over http:// locks out everyone,
  admin included, with no way to delete the policy again.
- Presigned GET (SigV4 and SigV2) works via plain HTTP; expired → 403 AccessDenied; unsigned → 403.
- PUT to a missing bucket creates it unless -s3.autoCreateBucket=false (we pass it: NoSuchBucket).
- Path-style is what it gets on 127.0.0.1/localhost; forcing virtual-host style breaks.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from camvault.embedded import _GRPC_OFFSET, EmbeddedPostgres, SeaweedFS, free_port
from camvault.errors import ServiceUnavailable


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def _http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@pytest.fixture
def client(seaweed: SeaweedFS) -> Iterator[Any]:
    c = seaweed.client()
    yield c
    c.close()


@pytest.fixture
def fresh_bucket(client: Any) -> str:
    name = f"emb-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


# --- free ports and start-up errors (no server needed, or one that fails fast) -----------


def test_free_port_pairs_are_distinct_and_free() -> None:
    ports = [free_port(grpc_pair=True) for _ in range(20)]
    assert len(set(ports)) == 20
    for p in ports:
        assert 1024 <= p < 65_535 - _GRPC_OFFSET
        for q in (p, p + _GRPC_OFFSET):
            with socket.socket() as s:
                s.bind(("127.0.0.1", q))  # raises if taken


def test_missing_binary_is_service_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    with pytest.raises(ServiceUnavailable, match="`weed` not found"):
        SeaweedFS(tmp_path / "sw").start()


def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    port = free_port(grpc_pair=True)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        server = SeaweedFS(tmp_path / "sw", master_port=port, start_timeout=20)
        with pytest.raises(ServiceUnavailable, match="address already in use"):
            server.start()
    assert not server.is_running


# --- one server's whole life: SSE object survives stop, kill and new ports ---------------


def test_sse_object_survives_restart_kill_and_new_ports(tmp_path: Path) -> None:
    data = tmp_path / "sw"
    body = os.urandom(300_000)
    meta = {"camera-id": "lobby-1", "start": "2026-11-20T08:00:00Z", "codec": "h264"}
    server = SeaweedFS(data)
    with server:
        assert server.is_running
        kek = (data / "security.toml").read_text()
        c = server.client()
        c.create_bucket(Bucket="cctv")
        put = c.put_object(
            Bucket="cctv",
            Key="lobby-1/seg.mp4",
            Body=body,
            ServerSideEncryption="AES256",
            StorageClass="STANDARD",
            Metadata=meta,
        )
        assert put["ServerSideEncryption"] == "AES256"
        head = c.head_object(Bucket="cctv", Key="lobby-1/seg.mp4")
        assert head["ServerSideEncryption"] == "AES256"
        assert head["Metadata"] == meta
        assert head["ContentLength"] == len(body)
        assert c.get_object(Bucket="cctv", Key="lobby-1/seg.mp4")["Body"].read() == body
        c.close()

        # SIGTERM never finishes in < 15 s on 4.48 (filer gRPC graceful-stop timeout)
        server.stop(grace=2)
        assert not server.is_running
        server.start()
        assert (data / "security.toml").read_text() == kek  # same KEK, not a new one
        c = server.client()
        head = c.head_object(Bucket="cctv", Key="lobby-1/seg.mp4")
        assert head["ServerSideEncryption"] == "AES256"
        assert c.get_object(Bucket="cctv", Key="lobby-1/seg.mp4")["Body"].read() == body
        c.close()

        ports = (server.s3_port, server.master_port, server.volume_port, server.filer_port)
        server.kill()
        assert server.returncode == -9
        server.start()
        assert (server.s3_port, server.master_port, server.volume_port, server.filer_port) == ports
        c = server.client()
        assert c.get_object(Bucket="cctv", Key="lobby-1/seg.mp4")["Body"].read() == body
        c.put_object(Bucket="cctv", Key="after-kill", Body=b"x", ServerSideEncryption="AES256")
        c.close()
        server.stop(grace=1)
    assert not server.is_running
    assert not (data / "weed.pid").exists()

    # `camvault run` after a crash: a new instance on the same data dir, other ports
    with SeaweedFS(data) as again:
        assert again.s3_port != server.s3_port
        c = again.client()
        assert c.get_object(Bucket="cctv", Key="lobby-1/seg.mp4")["Body"].read() == body
        assert c.get_object(Bucket="cctv", Key="after-kill")["Body"].read() == b"x"
        c.close()
        again.stop(grace=1)
    assert "address already in use" not in (data / "weed.log").read_text()


# --- contract: the SeaweedFS behaviour the rest of camvault is designed around -----------


def test_contract_credentials_are_required(seaweed: SeaweedFS, client: Any) -> None:
    import boto3

    client.create_bucket(Bucket="emb-auth")
    client.put_object(Bucket="emb-auth", Key="k", Body=b"x", ServerSideEncryption="AES256")
    assert _http_get(f"{seaweed.endpoint_url}/emb-auth/k")[0] == 403
    wrong = boto3.client("s3", **{**seaweed.client_kwargs(), "aws_secret_access_key": "nope"})
    with pytest.raises(ClientError) as exc:
        wrong.head_object(Bucket="emb-auth", Key="k")
    wrong.close()
    assert _code(exc)[1] == 403


def test_contract_missing_bucket_is_not_auto_created(client: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=f"emb-none-{uuid.uuid4().hex[:8]}", Key="k", Body=b"x")
    assert _code(exc) == ("NoSuchBucket", 404)


def test_contract_if_none_match(client: Any, fresh_bucket: str) -> None:
    client.put_object(Bucket=fresh_bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=fresh_bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert _code(exc) == ("PreconditionFailed", 412)
    assert client.get_object(Bucket=fresh_bucket, Key="k")["Body"].read() == b"first"


def test_contract_checksums(client: Any, fresh_bucket: str) -> None:
    body = b"video" * 1000
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    client.put_object(
        Bucket=fresh_bucket, Key="ok", Body=body, ChecksumSHA256=sha, ServerSideEncryption="AES256"
    )
    head = client.head_object(Bucket=fresh_bucket, Key="ok", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha
    with pytest.raises(ClientError) as exc:
        client.put_object(
            Bucket=fresh_bucket,
            Key="bad",
            Body=body,
            ChecksumSHA256=base64.b64encode(b"\0" * 32).decode(),
        )
    assert _code(exc) == ("BadDigest", 400)
    with pytest.raises(ClientError) as exc:
        client.head_object(Bucket=fresh_bucket, Key="bad")
    assert _code(exc)[1] == 404


def test_contract_bucket_configuration(client: Any, fresh_bucket: str) -> None:
    client.put_bucket_encryption(
        Bucket=fresh_bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    client.put_object(Bucket=fresh_bucket, Key="plain", Body=b"x")
    assert client.head_object(Bucket=fresh_bucket, Key="plain")["ServerSideEncryption"] == "AES256"
    expire = {"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": ""}}
    client.put_bucket_lifecycle_configuration(
        Bucket=fresh_bucket,
        LifecycleConfiguration={"Rules": [{**expire, "Expiration": {"Days": 365}}]},
    )
    transition = {**expire, "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}
    with pytest.raises(ClientError) as exc:
        client.put_bucket_lifecycle_configuration(
            Bucket=fresh_bucket, LifecycleConfiguration={"Rules": [transition]}
        )
    assert _code(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        client.put_public_access_block(
            Bucket=fresh_bucket,
            PublicAccessBlockConfiguration={"BlockPublicAcls": True, "IgnorePublicAcls": True},
        )
    assert _code(exc) == ("NotImplemented", 501)
    # SSE-required policy is enforced (the TLS-only one would lock the bucket: never over http)
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{fresh_bucket}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
    }
    policy = {"Version": "2012-10-17", "Statement": [deny]}
    client.put_bucket_policy(Bucket=fresh_bucket, Policy=json.dumps(policy))
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=fresh_bucket, Key="no-sse", Body=b"x")
    assert _code(exc) == ("AccessDenied", 403)
    client.put_object(Bucket=fresh_bucket, Key="sse", Body=b"x", ServerSideEncryption="AES256")
    client.delete_bucket_policy(Bucket=fresh_bucket)


def test_contract_presigned_get(client: Any, fresh_bucket: str) -> None:
    client.put_object(Bucket=fresh_bucket, Key="seg", Body=b"frames", ServerSideEncryption="AES256")
    params = {"Bucket": fresh_bucket, "Key": "seg"}
    url = client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    assert "X-Amz-Signature=" in url  # SigV4, not the legacy SigV2 botocore would pick
    assert _http_get(url) == (200, b"frames")
    short = client.generate_presigned_url("get_object", Params=params, ExpiresIn=1)
    time.sleep(2.2)
    status, text = _http_get(short)
    assert status == 403
    assert b"AccessDenied" in text


# --- embedded PostgreSQL -----------------------------------------------------------------


def _pgserver_unusable() -> str:
    if importlib.util.find_spec("pgserver") is None:
        return "pgserver is not installed (pip install camvault[embedded])"
    if os.geteuid() == 0 and not any(
        Path(d, "useradd").exists() for d in ("/usr/sbin", "/sbin", "/usr/bin")
    ):
        return "running as root: pgserver needs `useradd` to create its `pgserver` user"
    return ""


_PG_UNUSABLE = _pgserver_unusable()


@pytest.mark.skipif(bool(_PG_UNUSABLE), reason=_PG_UNUSABLE)
def test_embedded_postgres(tmp_path: Path) -> None:
    import psycopg

    pg = EmbeddedPostgres(tmp_path / "pg")
    with pg:
        assert pg.url.startswith("postgresql://")
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table t (x int)")
            conn.execute("insert into t values (42)")
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
    with pg, psycopg.connect(pg.url) as conn:  # data survives a restart
        assert conn.execute("select x from t").fetchone() == (42,)


def test_credentials_are_generated_per_data_dir_and_kept_private(
    tmp_path: Path, seaweed: SeaweedFS
) -> None:
    import boto3

    from camvault.embedded import CREDENTIALS_FILE, data_dir_credentials

    a, b = tmp_path / "a", tmp_path / "b"
    pair_a, pair_b = data_dir_credentials(a), data_dir_credentials(b)
    assert pair_a != pair_b and pair_a[1] != "camvault-secret-key"
    assert data_dir_credentials(a) == pair_a  # kept: a restart reaches the same data
    assert (SeaweedFS(a).access_key, SeaweedFS(a).secret_key) == pair_a
    for d in (a, b):
        assert (d / CREDENTIALS_FILE).stat().st_mode & 0o777 == 0o600
    # the running server's identity is its own data dir's pair; the old fixed pair is refused
    assert (seaweed.access_key, seaweed.secret_key) == data_dir_credentials(seaweed.data_dir)
    assert (seaweed.data_dir / "s3.json").stat().st_mode & 0o777 == 0o600
    fixed = {
        **seaweed.client_kwargs(),
        "aws_access_key_id": "camvault",
        "aws_secret_access_key": "camvault-secret-key",
    }
    old = boto3.client("s3", **fixed)
    with pytest.raises(ClientError) as exc:
        old.list_buckets()
    old.close()
    assert _code(exc)[1] == 403
