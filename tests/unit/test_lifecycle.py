"""Pure lifecycle logic: rule generation, S3 rule evaluation, validation, the SSE policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from camvault import lifecycle
from camvault.config import LifecycleSettings, load_settings
from camvault.errors import ConfigError
from camvault.wiring import retention_policy

T0 = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


def lc(**kw: Any) -> lifecycle.RetentionPolicy:
    return retention_policy(LifecycleSettings.model_validate(kw))


def ids(rules: list[dict[str, Any]]) -> list[str]:
    return [r["ID"] for r in rules]


# rule generation ----------------------------------------------------------------------------
def test_default_rules_expirations_before_transitions() -> None:
    rules = lifecycle.lifecycle_rules(lc(), "cctv/")
    assert ids(rules) == [
        "camvault-abort-multipart",
        "camvault-default-expire",
        "camvault-exports-expire",
        "camvault-default-archive",
    ]
    by_id = {r["ID"]: r for r in rules}
    assert by_id["camvault-default-expire"] == {
        "ID": "camvault-default-expire",
        "Filter": {"Prefix": "cctv/"},
        "Status": "Enabled",
        "Expiration": {"Days": 365},
    }
    assert by_id["camvault-default-archive"]["Transitions"] == [
        {"Days": 30, "StorageClass": "GLACIER"}
    ]
    assert by_id["camvault-abort-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }


def test_no_transition_and_no_expiry() -> None:
    rules = lifecycle.lifecycle_rules(
        lc(transition_storage_class="", expire_after_days=0, export_expire_days=0), ""
    )
    assert ids(rules) == ["camvault-abort-multipart"]


def test_exports_expire_after_export_expire_days() -> None:
    rules = lifecycle.lifecycle_rules(lc(export_expire_days=3), "cctv/")
    rule = next(r for r in rules if r["ID"] == "camvault-exports-expire")
    assert rule["Filter"] == {"Prefix": "cctv/exports/"} and rule["Expiration"] == {"Days": 3}
    got = lifecycle.evaluate(rules, "cctv/exports/cam/1_x.mp4", T0, T0)
    assert got.expires_at == lifecycle.action_time(T0, 3)


def test_shorter_override_keeps_the_catch_all_rule() -> None:
    settings = lc(cameras={"hall": {"expire_after_days": 60}})
    rules = lifecycle.lifecycle_rules(settings, "", known_cameras=["hall", "lobby"])
    assert "camvault-default-expire" in ids(rules)
    hall = next(r for r in rules if r["ID"] == "camvault-camera-hall-expire")
    assert hall["Filter"] == {"Prefix": "hall/"} and hall["Expiration"] == {"Days": 60}


def test_longer_override_splits_the_default_per_known_camera() -> None:
    # a catch-all 365-day rule would delete the evidence camera's footage at 365 days too
    settings = lc(cameras={"evidence": {"expire_after_days": 3650}})
    rules = lifecycle.lifecycle_rules(settings, "p/", known_cameras=["evidence", "lobby"])
    assert "camvault-default-expire" not in ids(rules)
    assert "camvault-default-lobby-expire" in ids(rules)
    assert "camvault-camera-evidence-expire" in ids(rules)
    # no rule, other than abort, covers the evidence camera with a shorter expiry
    now = T0 + timedelta(days=400)
    got = lifecycle.evaluate(rules, "p/evidence/2026/01/15/x.mp4", T0, now)
    assert got.expires_at == lifecycle.action_time(T0, 3650)
    assert lifecycle.evaluate(rules, "p/lobby/x.mp4", T0, now).expires_at == (
        lifecycle.action_time(T0, 365)
    )


# evaluation (mirror of S3) ------------------------------------------------------------------
def test_action_time_rounds_up_to_midnight_utc() -> None:
    assert lifecycle.action_time(T0, 30) == datetime(2026, 2, 15, tzinfo=UTC)
    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    assert lifecycle.action_time(midnight, 1) == datetime(2026, 1, 2, tzinfo=UTC)


def test_evaluate_class_and_expiry_over_time() -> None:
    rules = lifecycle.lifecycle_rules(lc(), "")
    key = "cam/2026/01/15/cam_20260115T103000Z.mp4"
    early = lifecycle.evaluate(rules, key, T0, T0 + timedelta(days=1))
    assert early.storage_class == "STANDARD"
    assert early.archive_class == "GLACIER"
    assert early.archive_at == datetime(2026, 2, 15, tzinfo=UTC)
    assert early.expires_at == lifecycle.action_time(T0, 365)
    late = lifecycle.evaluate(rules, key, T0, T0 + timedelta(days=31))
    assert late.storage_class == "GLACIER" and not late.expired(T0 + timedelta(days=31))
    assert late.expired(T0 + timedelta(days=366))


def test_evaluate_overlaps_disabled_and_tag_rules() -> None:
    rules = [
        {"ID": "a", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 100}},
        {"ID": "b", "Filter": {"Prefix": "x/"}, "Status": "Enabled", "Expiration": {"Days": 10}},
        {"ID": "c", "Filter": {"Prefix": "x/"}, "Status": "Disabled", "Expiration": {"Days": 1}},
        {
            "ID": "d",
            "Filter": {"And": {"Prefix": "x/", "Tags": [{"Key": "k", "Value": "v"}]}},
            "Status": "Enabled",
            "Expiration": {"Days": 2},
        },
        {
            "ID": "e",
            "Filter": {"Prefix": "x/"},
            "Status": "Enabled",
            "Transitions": [
                {"Days": 5, "StorageClass": "GLACIER_IR"},
                {"Days": 7, "StorageClass": "DEEP_ARCHIVE"},
            ],
        },
    ]
    got = lifecycle.evaluate(rules, "x/k", T0, T0 + timedelta(days=6))
    assert got.expires_at == lifecycle.action_time(T0, 10)  # earliest matching, enabled
    assert got.storage_class == "GLACIER_IR"
    assert got.archive_class == "DEEP_ARCHIVE"
    assert lifecycle.evaluate(rules, "y/k", T0, T0).expires_at == lifecycle.action_time(T0, 100)


def test_archive_after_expiry_is_not_expected() -> None:
    rules = [
        {"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 10}},
        {
            "ID": "y",
            "Status": "Enabled",
            "Filter": {},
            "Transitions": [{"Days": 20, "StorageClass": "GLACIER"}],
        },
    ]
    got = lifecycle.evaluate(rules, "k", T0, T0)
    assert got.archive_class is None and got.archive_at is None


# validation -----------------------------------------------------------------------------------
def test_expiry_must_follow_transition(tmp_path: Any) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[lifecycle]\ntransition_after_days = 30\nexpire_after_days = 30\n")
    with pytest.raises(ConfigError, match="expire_after_days must be greater"):
        load_settings(cfg, environ={})
    cfg.write_text("[lifecycle.cameras.lobby]\nexpire_after_days = 10\n")
    with pytest.raises(ConfigError, match=r"lifecycle.cameras.lobby"):
        load_settings(cfg, environ={})
    cfg.write_text("[lifecycle.cameras.lobby]\nexpire_after_days = 0\n")
    assert load_settings(cfg, environ={}).lifecycle.retention("lobby") == ("GLACIER", 30, 0)


def test_glacier_minimum_duration_warnings() -> None:
    assert lifecycle.retention_warnings(lc()) == []  # 335 days in GLACIER
    w = lifecycle.retention_warnings(
        lc(
            transition_after_days=30,
            expire_after_days=60,
            cameras={
                "vault": {"transition_storage_class": "DEEP_ARCHIVE", "expire_after_days": 200}
            },
        )
    )
    assert len(w) == 2
    assert "[lifecycle]: footage spends 30 days in GLACIER" in w[0] and "90 days" in w[0]
    assert "[lifecycle.cameras.vault]" in w[1] and "DEEP_ARCHIVE" in w[1] and "180" in w[1]


# restore header ---------------------------------------------------------------------------------
def test_parse_restore_header() -> None:
    assert lifecycle.parse_restore_header(None) is None
    st = lifecycle.parse_restore_header('ongoing-request="true"')
    assert st is not None and st.ongoing and st.expires_at is None
    st = lifecycle.parse_restore_header(
        'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'
    )
    assert st is not None and not st.ongoing
    assert st.expires_at == datetime(2012, 12, 21, tzinfo=UTC)


# the SSE policy and the multipart trap (botocore #471) -------------------------------------------
def _condition_holds(op: str, key: str, want: Any, ctx: dict[str, str]) -> bool:
    """IAM condition semantics for the operators we use (AWS docs: a missing key never
    matches a positive operator and always matches a negated one)."""
    values = want if isinstance(want, list) else [want]
    present = key in ctx
    if op == "Null":
        return (not present) == (str(values[0]) == "true")
    if op == "Bool":
        return present and ctx[key] == str(values[0])
    if op == "StringEquals":
        return present and ctx[key] in values
    if op == "StringNotEquals":
        return not present or ctx[key] not in values
    raise AssertionError(f"operator {op} not modelled")


def denied(policy: list[dict[str, Any]], action: str, ctx: dict[str, str]) -> bool:
    for st in policy:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] != "Deny" or not any(a in (action, "s3:*") for a in actions):
            continue
        if all(
            _condition_holds(op, k, v, ctx)
            for op, kv in st.get("Condition", {}).items()
            for k, v in kv.items()
        ):
            return True
    return False


def request(op: str, sse: str | None = None, tls: bool = True) -> dict[str, str]:
    """The request context S3 builds: every object write is authorised as s3:PutObject."""
    ctx = {"aws:SecureTransport": "true" if tls else "false", "s3:ObjectCreationOperation": op}
    if sse is not None:
        ctx["s3:x-amz-server-side-encryption"] = sse
    return ctx


def test_policy_denies_unencrypted_and_kms_puts_but_not_upload_part() -> None:
    policy = lifecycle.policy_statements("b")
    assert denied(policy, "s3:PutObject", request("PutObject"))
    assert denied(policy, "s3:PutObject", request("PutObject", "aws:kms"))
    assert denied(policy, "s3:PutObject", request("CreateMultipartUpload", "aws:kms"))
    assert denied(policy, "s3:PutObject", request("PutObject", "AES256", tls=False))
    assert not denied(policy, "s3:PutObject", request("PutObject", "AES256"))
    assert not denied(policy, "s3:PutObject", request("CreateMultipartUpload", "AES256"))
    # the parts and the completion carry no SSE header
    assert not denied(policy, "s3:PutObject", request("UploadPart"))
    assert not denied(policy, "s3:PutObject", request("CompleteMultipartUpload"))


def test_textbook_policy_falls_into_the_multipart_trap() -> None:
    textbook = [
        {
            "Effect": "Deny",
            "Action": "s3:PutObject",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        }
    ]
    assert denied(textbook, "s3:PutObject", request("UploadPart"))  # what #471 hit


def test_policy_statements_and_merge() -> None:
    ours = lifecycle.policy_statements("bkt", region="cn-north-1", deny_insecure_transport=False)
    assert [s["Sid"] for s in ours] == ["CamvaultDenyNonAES256", "CamvaultDenyMissingSSE"]
    assert ours[0]["Resource"] == "arn:aws-cn:s3:::bkt/*"
    foreign = {
        "Sid": "TheirOwn",
        "Effect": "Allow",
        "Principal": {"AWS": "x"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::bkt/*",
    }
    merged = lifecycle.merge_policy({"Statement": [foreign, {"Sid": "CamvaultOld"}]}, ours)
    assert merged["Statement"] == [foreign, *ours]
    # a backend that collapses one-element lists still compares equal
    collapsed = {
        **merged,
        "Statement": [{**s, "Resource": [s["Resource"]]} for s in merged["Statement"]],
    }
    assert lifecycle.policy_equal(merged, collapsed)
    assert not lifecycle.policy_equal(merged, lifecycle.merge_policy(None, ours))


def test_normalize_rule_drops_backend_decorations() -> None:
    rule = {
        "ID": "x",
        "Prefix": "a/",
        "Status": "Enabled",
        "Expiration": {"Days": 3, "ExpiredObjectDeleteMarker": False},
    }
    assert lifecycle.normalize_rule(rule) == {
        "ID": "x",
        "Filter": {"Prefix": "a/"},
        "Status": "Enabled",
        "Expiration": {"Days": 3},
    }
