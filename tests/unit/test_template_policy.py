"""The SAM template's bucket policy is the one ``camvault bucket apply`` writes: the same
statements, so a stack-deployed bucket accepts multipart uploads too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from camvault.lifecycle import policy_equal, policy_statements

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"
BUCKET = "camvault-video"
ARN = f"arn:aws:s3:::{BUCKET}"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub …) as their long forms."""


def _tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def _resolve(value: Any) -> Any:
    """The bucket ARN for a bucket named ``BUCKET`` (the only intrinsics the policy uses)."""
    if isinstance(value, dict):
        if value.keys() == {"Fn::GetAtt"} and value["Fn::GetAtt"] == ["VideoBucket", "Arn"]:
            return ARN
        if value.keys() == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"].replace("${VideoBucket.Arn}", ARN)
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def test_template_bucket_policy_equals_what_bucket_apply_writes() -> None:
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    doc = _resolve(template["Resources"]["VideoBucketPolicy"]["Properties"]["PolicyDocument"])
    ours = {"Version": "2012-10-17", "Statement": policy_statements(BUCKET)}
    assert policy_equal(doc, ours), doc
    # and it is not the textbook deny that refuses UploadPart
    for s in doc["Statement"]:
        cond = s.get("Condition", {})
        if "StringNotEquals" in cond:
            assert "Null" in cond, s
