"""``make_client`` loads botocore's models without their documentation (resident memory,
bench/export_clip.py), once per process, and the client works all the same: operations,
shapes, endpoint rules, presigned URLs, request serialisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.stub import Stubber

from camvault.s3 import boto
from camvault.s3.boto import make_client


@dataclass(frozen=True)
class _Opts:
    region: str = "us-east-1"
    endpoint_url: str | None = "http://127.0.0.1:9"
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    connect_timeout_seconds: float = 1.0
    read_timeout_seconds: float = 1.0


def test_the_model_carries_no_documentation() -> None:
    client = make_client(_Opts(), credentials=("key", "secret"))
    model = client.meta.service_model
    op = model.operation_model("UploadPart")
    assert model.documentation == "" and op.documentation == ""
    assert op.input_shape.members["ChecksumCRC32"].documentation == ""
    assert "PartNumber" in op.input_shape.members  # the rest of the model is there


def test_a_client_without_docs_still_signs_and_serialises() -> None:
    client = make_client(_Opts(), credentials=("key", "secret"))
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "cam/x.mp4"}, ExpiresIn=60
    )
    parts = urlsplit(url)
    assert parts.path == "/b/cam/x.mp4" and "X-Amz-Signature" in parse_qs(parts.query)
    with Stubber(client) as stub:
        stub.add_response(
            "upload_part",
            {"ETag": '"e1"'},
            {"Bucket": "b", "Key": "k", "UploadId": "u", "PartNumber": 1, "Body": b"x",
             "ChecksumCRC32": "AAAAAA=="},
        )  # fmt: skip
        r = client.upload_part(
            Bucket="b", Key="k", UploadId="u", PartNumber=1, Body=b"x", ChecksumCRC32="AAAAAA=="
        )
    assert r["ETag"] == '"e1"'


def test_a_second_client_reads_no_model_file(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = boto._NoDocsLoader.load_file

    def counting(self: Any, file_path: str) -> Any:
        reads.append(file_path)
        return real(self, file_path)

    monkeypatch.setattr(boto._NoDocsLoader, "load_file", counting)
    make_client(_Opts(), credentials=("key", "secret"))  # maybe the process's first
    reads.clear()
    second = make_client(_Opts(), credentials=("key", "secret"))
    assert reads == []
    assert second.meta.service_model.operation_model("PutObject").documentation == ""
