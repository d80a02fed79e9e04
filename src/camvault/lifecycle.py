"""What the bucket should look like, and what the rules in force mean for one object.

Pure: no I/O. ``bucket`` applies these documents, ``retention`` and ``restore`` use the
evaluation half to keep the catalog truthful.

Lifecycle rules are written per concern so a backend that rejects one feature (SeaweedFS
answers ``NotImplemented`` to transitions) can be told apart precisely:

* ``camvault-abort-multipart``        abort incomplete multipart uploads under our prefix
* ``camvault-<scope>-expire``         expiration (``expire_after_days``; none when 0)
* ``camvault-<scope>-archive``        transition to GLACIER / DEEP_ARCHIVE / GLACIER_IR

``<scope>`` is ``default`` (the whole prefix) or ``camera-<id>`` (a camera's key prefix,
``[lifecycle.cameras.<id>]``). S3 applies *every* rule whose filter matches, the earliest
action winning, so a default rule over the whole prefix would cut short a camera that is
meant to keep footage longer. When an override asks for more than the default, the
default is therefore written per known camera instead (``camvault-default-<id>-…``), and a
camera added later needs another ``bucket apply`` (``retention sync`` reports it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

SSE_ALGORITHM = "AES256"
RULE_PREFIX = "camvault-"
POLICY_SID_PREFIX = "Camvault"
# classes whose objects must be restored before they can be read
RESTORE_REQUIRED = frozenset({"GLACIER", "DEEP_ARCHIVE"})
# minimum billed storage duration per class (AWS pricing): deleting earlier costs the rest
MIN_STORAGE_DAYS = {"GLACIER": 90, "DEEP_ARCHIVE": 180, "GLACIER_IR": 90}
# colder wins when several transitions are due (S3's own precedence)
_COLDNESS = {
    "STANDARD": 0,
    "STANDARD_IA": 1,
    "INTELLIGENT_TIERING": 2,
    "ONEZONE_IA": 3,
    "GLACIER_IR": 4,
    "GLACIER": 5,
    "DEEP_ARCHIVE": 6,
}
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


@dataclass(frozen=True, slots=True)
class Retention:
    """One camera's lifecycle: transition class/age (``""`` = none), expiry age (0 = never)."""

    transition_class: str  # "" = no transition
    transition_days: int
    expire_days: int  # 0 = never


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """``[lifecycle]`` as plain values (built by ``wiring.retention_policy``): the default
    retention, each camera's own (keys an override leaves out already inherited), and the
    housekeeping rules."""

    default: Retention
    cameras: tuple[tuple[str, Retention], ...] = ()  # (camera id, retention), sorted
    abort_incomplete_multipart_days: int = 1
    export_expire_days: int = 7  # 0 = keep

    def of(self, camera_id: str | None = None) -> Retention:
        """The retention in force for a camera (the default when it has no override)."""
        return dict(self.cameras).get(camera_id or "", self.default)


# Bucket documents -------------------------------------------------------------------------
def encryption_document() -> dict[str, Any]:
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_ALGORITHM},
                "BucketKeyEnabled": False,
            }
        ]
    }


def encryption_matches(current: Mapping[str, Any] | None) -> bool:
    if not current:
        return False
    return any(
        r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == SSE_ALGORITHM
        for r in current.get("Rules", [])
    )


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def policy_statements(
    bucket: str, *, region: str = "us-east-1", deny_insecure_transport: bool = True
) -> list[dict[str, Any]]:
    """Our statements (Sid ``Camvault…``) of the bucket policy.

    The SSE rule is two statements because of the multipart trap (botocore #471): UploadPart
    and CompleteMultipartUpload are authorised as ``s3:PutObject`` but carry no
    ``x-amz-server-side-encryption`` header, so the textbook ``StringNotEquals … AES256``
    deny refuses them. Instead: a *present* header must say AES256; a *missing* header is
    refused only on the operations that accept one (``s3:ObjectCreationOperation``). A
    backend that does not know that key never applies the second statement, and the bucket
    default encryption covers such PUTs.
    """
    arn = f"arn:{_partition(region)}:s3:::{bucket}"
    objects = f"{arn}/*"
    out: list[dict[str, Any]] = []
    if deny_insecure_transport:
        out.append(
            {
                "Sid": f"{POLICY_SID_PREFIX}DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, objects],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        )
    out.append(
        {
            "Sid": f"{POLICY_SID_PREFIX}DenyNonAES256",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {
                "Null": {"s3:x-amz-server-side-encryption": "false"},
                "StringNotEquals": {"s3:x-amz-server-side-encryption": SSE_ALGORITHM},
            },
        }
    )
    out.append(
        {
            "Sid": f"{POLICY_SID_PREFIX}DenyMissingSSE",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": objects,
            "Condition": {
                "Null": {"s3:x-amz-server-side-encryption": "true"},
                "StringEquals": {
                    "s3:ObjectCreationOperation": [
                        "PutObject",
                        "CopyObject",
                        "CreateMultipartUpload",
                    ]
                },
            },
        }
    )
    return out


def merge_policy(
    current: Mapping[str, Any] | None, ours: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The current policy with our statements replaced; foreign statements are kept."""
    foreign = [
        s
        for s in (current or {}).get("Statement", [])
        if not str(s.get("Sid", "")).startswith(POLICY_SID_PREFIX)
    ]
    return {"Version": "2012-10-17", "Statement": [*foreign, *ours]}


def _norm(value: Any) -> Any:
    # backends re-serialise policies: one-element lists become scalars, order may change
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items()) if k != "Id"}
    if isinstance(value, list):
        items = [_norm(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def policy_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    return bool(_norm(dict(a or {})) == _norm(dict(b or {})))


# Lifecycle rules ---------------------------------------------------------------------------
EXPORTS_DIR = "exports/"  # clip exports live under {prefix}exports/ (camvault.export)


def _rules_for(scope: str, prefix: str, r: Retention) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if r.expire_days:
        out.append(
            {
                "ID": f"{RULE_PREFIX}{scope}-expire",
                "Filter": {"Prefix": prefix},
                "Status": "Enabled",
                "Expiration": {"Days": r.expire_days},
            }
        )
    if r.transition_class:
        out.append(
            {
                "ID": f"{RULE_PREFIX}{scope}-archive",
                "Filter": {"Prefix": prefix},
                "Status": "Enabled",
                "Transitions": [{"Days": r.transition_days, "StorageClass": r.transition_class}],
            }
        )
    return out


def outlives(default: Retention, override: Retention) -> bool:
    """Would a default rule over the whole prefix act on the camera's footage sooner than
    its override wants? (S3 applies every matching rule; the earliest action wins.)"""
    if default.expire_days and (
        not override.expire_days or override.expire_days > default.expire_days
    ):
        return True
    if default.transition_class:
        if not override.transition_class or override.transition_days > default.transition_days:
            return True
        if _COLDNESS[default.transition_class] > _COLDNESS[override.transition_class]:
            return True
    return False


def lifecycle_rules(
    lc: RetentionPolicy, prefix: str, known_cameras: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Our lifecycle rules, in apply order (abort, expirations, then transitions)."""
    default = lc.default
    rules: list[dict[str, Any]] = [
        {
            "ID": f"{RULE_PREFIX}abort-multipart",
            "Filter": {"Prefix": prefix},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {
                "DaysAfterInitiation": lc.abort_incomplete_multipart_days
            },
        }
    ]
    overrides = dict(lc.cameras)
    if any(outlives(default, o) for o in overrides.values()):
        for cam in sorted(set(known_cameras) - set(overrides)):
            rules += _rules_for(f"default-{cam}", f"{prefix}{cam}/", default)
    else:
        rules += _rules_for("default", prefix, default)
    for cam, o in overrides.items():
        rules += _rules_for(f"camera-{cam}", f"{prefix}{cam}/", o)
    if lc.export_expire_days:
        rules.append(
            {
                "ID": f"{RULE_PREFIX}exports-expire",
                "Filter": {"Prefix": f"{prefix}{EXPORTS_DIR}"},
                "Status": "Enabled",
                "Expiration": {"Days": lc.export_expire_days},
            }
        )
    # expirations first: if the backend rejects transitions, the rest still goes in
    return sorted(rules, key=lambda r: ("Transitions" in r, r["ID"]))


def is_ours(rule: Mapping[str, Any]) -> bool:
    return str(rule.get("ID", "")).startswith(RULE_PREFIX)


def normalize_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule as we compare it: backend decorations dropped, legacy ``Prefix`` mapped."""
    out = {k: v for k, v in rule.items() if v not in (None, {}, [])}
    if "Prefix" in out and "Filter" not in out:
        out["Filter"] = {"Prefix": out.pop("Prefix")}
    exp = out.get("Expiration")
    if isinstance(exp, dict) and exp.get("ExpiredObjectDeleteMarker") is False:
        out["Expiration"] = {k: v for k, v in exp.items() if k != "ExpiredObjectDeleteMarker"}
    out.setdefault("Filter", {"Prefix": ""})
    return out


def describe_rule(rule: Mapping[str, Any]) -> str:
    what = []
    if "Expiration" in rule:
        what.append(f"expire after {rule['Expiration'].get('Days')} days")
    for t in rule.get("Transitions", []):
        what.append(f"transition to {t['StorageClass']} after {t.get('Days')} days")
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        what.append(f"abort incomplete multipart uploads after {days} day(s)")
    prefix = rule.get("Filter", {}).get("Prefix", "")
    return f"{', '.join(what) or 'no action'} under {prefix or '(whole bucket)'!r}"


# Validation ----------------------------------------------------------------------------------
def retention_warnings(lc: RetentionPolicy) -> list[str]:
    """Things that are allowed but probably not meant (errors are raised by ``config``)."""
    out: list[str] = []
    scopes: list[tuple[str, Retention]] = [("[lifecycle]", lc.default)]
    scopes += [(f"[lifecycle.cameras.{c}]", r) for c, r in lc.cameras]
    for name, r in scopes:
        minimum = MIN_STORAGE_DAYS.get(r.transition_class)
        if minimum and r.expire_days and r.expire_days - r.transition_days < minimum:
            out.append(
                f"{name}: footage spends {r.expire_days - r.transition_days} days in "
                f"{r.transition_class} before expiry, but {r.transition_class} bills a minimum "
                f"of {minimum} days: each object is charged as if kept {minimum} days"
            )
        if r.transition_class == "GLACIER_IR" and r.transition_days < 30:
            out.append(
                f"{name}: GLACIER_IR transitions earlier than 30 days are rejected by AWS "
                "for objects that were not first in STANDARD_IA"
            )
    return out


# Evaluation: what the rules in force do to one object ---------------------------------------
@dataclass(frozen=True, slots=True)
class Expected:
    """What the lifecycle rules will do to one object: its class now, the archive class and date,
    and its expiry."""

    storage_class: str  # where the object should be now
    archive_class: str | None  # coldest class a transition will take it to
    archive_at: datetime | None  # when it moves there
    expires_at: datetime | None  # when S3 deletes it (None = never)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def action_time(created: datetime, days: int) -> datetime:
    """S3 adds the days to the creation time and rounds *up* to the next midnight UTC."""
    t = created.astimezone(UTC) + timedelta(days=days)
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == t else midnight + timedelta(days=1)


def _matches(rule: Mapping[str, Any], key: str, size: int | None) -> bool:
    if rule.get("Status") != "Enabled":
        return False
    f = rule.get("Filter")
    if f is None:
        return key.startswith(str(rule.get("Prefix", "")))
    cond = f.get("And", f)
    if "Tag" in cond or cond.get("Tags"):
        return False  # object tags are not known here; camvault does not tag objects
    if not key.startswith(str(cond.get("Prefix", ""))):
        return False
    if size is not None:
        if "ObjectSizeGreaterThan" in cond and not size > int(cond["ObjectSizeGreaterThan"]):
            return False
        if "ObjectSizeLessThan" in cond and not size < int(cond["ObjectSizeLessThan"]):
            return False
    return True


def _when(spec: Mapping[str, Any], created: datetime) -> datetime | None:
    if spec.get("Days") is not None:
        return action_time(created, int(spec["Days"]))
    date = spec.get("Date")
    if isinstance(date, datetime):
        return date.astimezone(UTC)
    if isinstance(date, str):
        return datetime.fromisoformat(date.replace("Z", "+00:00")).astimezone(UTC)
    return None


def evaluate(
    rules: Iterable[Mapping[str, Any]],
    key: str,
    created: datetime,
    now: datetime,
    size: int | None = None,
) -> Expected:
    """Mirror of S3's lifecycle semantics for one object of the current version."""
    expiries: list[datetime] = []
    transitions: list[tuple[datetime, str]] = []
    for rule in rules:
        if not _matches(rule, key, size):
            continue
        if "Expiration" in rule and (at := _when(rule["Expiration"], created)) is not None:
            expiries.append(at)
        for t in rule.get("Transitions", []):
            if (at := _when(t, created)) is not None:
                transitions.append((at, str(t["StorageClass"])))
    expires_at = min(expiries, default=None)
    due = [c for at, c in transitions if at <= now]
    current = max(due, key=lambda c: _COLDNESS.get(c, 0), default="STANDARD")
    archive_class = max(
        (c for _, c in transitions), key=lambda c: _COLDNESS.get(c, 0), default=None
    )
    archive_at = min((at for at, c in transitions if c == archive_class), default=None)
    if archive_at is not None and expires_at is not None and archive_at >= expires_at:
        archive_class = archive_at = None  # deleted before it would move
    return Expected(current, archive_class, archive_at, expires_at)


# Restores ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RestoreState:
    """An object's ``x-amz-restore`` header, parsed: restore under way, and when the restored copy
    expires."""

    ongoing: bool
    expires_at: datetime | None  # when the restored copy goes away


def parse_restore_header(value: str | None) -> RestoreState | None:
    """``x-amz-restore``: ``ongoing-request="true"`` or ``ongoing-request="false",
    expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"``; absent = no restore was asked for."""
    if not value:
        return None
    fields: dict[str, str] = {}
    for part in value.split('",'):
        name, _, val = part.strip().partition("=")
        fields[name.strip().lower()] = val.strip().strip('"')
    ongoing = fields.get("ongoing-request", "false").lower() == "true"
    expiry = fields.get("expiry-date")
    return RestoreState(ongoing, parsedate_to_datetime(expiry).astimezone(UTC) if expiry else None)


def needs_restore(storage_class: str | None) -> bool:
    return (storage_class or "STANDARD") in RESTORE_REQUIRED
