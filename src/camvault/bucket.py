"""``camvault bucket apply``: make the bucket match ``lifecycle``'s documents, idempotently.

``BucketAdmin`` is the S3 boundary for bucket-level configuration (botocore errors are
translated by code in ``s3.boto``, which also holds the one rule for creating the bucket);
``apply_bucket`` compares what is there with what should be and changes only the
difference, one concern at a time, in an order that never locks camvault out: bucket →
default encryption → public access block → lifecycle rules → policy (last: it restricts
requests).

A backend that refuses a feature does not stop the rest: a refused lifecycle rule or policy
statement is left out (the others are applied one by one) and reported with the backend's
error code, so the operator sees exactly what is not in force.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import botocore.exceptions

from camvault import lifecycle
from camvault.errors import StorageUnsupported as Unsupported
from camvault.s3.boto import S3Client, bucket_exists, create_bucket, error_code, translated

Action = Literal["unchanged", "created", "updated", "rejected", "skipped", "planned"]
# a backend's "I do not do that": the feature is missing, not the request broken
UNSUPPORTED_CODES = frozenset(
    {
        "NotImplemented",
        "InvalidArgument",
        "InvalidRequest",
        "MalformedXML",
        "InvalidStorageClass",
        "MalformedPolicy",
        "InvalidPolicyDocument",
        "UnsupportedArgument",
        "XNotImplemented",
    }
)
_MISSING = {
    "encryption": "ServerSideEncryptionConfigurationNotFoundError",
    "public_access_block": "NoSuchPublicAccessBlockConfiguration",
    "policy": "NoSuchBucketPolicy",
    "lifecycle": "NoSuchLifecycleConfiguration",
}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the bucket and the configuration, and what `apply` does."""

    item: str  # "bucket", "encryption", "public-access-block", "lifecycle rule <ID>", ...
    action: Action
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.action in ("rejected", "skipped")


@dataclass
class ApplyReport:
    """What `bucket apply` found and changed (or, with ``dry_run``, would change)."""

    bucket: str
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, item: str, action: Action, detail: str = "") -> None:
        self.changes.append(Change(item, action, detail))

    @property
    def partial(self) -> bool:
        return any(c.failed for c in self.changes)

    @property
    def changed(self) -> bool:
        return any(c.action in ("created", "updated", "planned") for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "dry_run": self.dry_run,
            "partial": self.partial,
            "changed": self.changed,
            "changes": [
                {"item": c.item, "action": c.action, "detail": c.detail} for c in self.changes
            ],
            "warnings": self.warnings,
        }


def _message(exc: botocore.exceptions.ClientError) -> str:
    # shown to the operator only; decisions are made on the code
    return str(exc.response.get("Error", {}).get("Message", ""))


class BucketAdmin:
    """Bucket-level S3 calls. ``get_*`` return None when the document is not set and raise
    ``Unsupported`` when the backend does not implement it."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with translated(f"{what} {self.bucket}"):
            try:
                return fn(Bucket=self.bucket, **kwargs)
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code in UNSUPPORTED_CODES:
                    raise Unsupported(code, _message(exc)) from exc
                raise

    def _get(self, doc: str, what: str, fn: Callable[..., Any]) -> Any:
        with translated(f"{what} {self.bucket}"):
            try:
                return fn(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code == _MISSING[doc]:
                    return None
                if code in UNSUPPORTED_CODES:
                    raise Unsupported(code, _message(exc)) from exc
                raise

    # bucket ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bucket_exists(self._s3, self.bucket)

    def create(self, region: str) -> bool:
        """Create the bucket; False when it turned out to be ours already. A name owned by
        another account is ``StoragePermanentError``: `bucket apply` must not go on to
        harden a bucket someone else owns (the rule: ``s3.boto.create_bucket``)."""
        return create_bucket(self._s3, self.bucket, region)

    def region(self) -> str:
        r = self._call("GET location", self._s3.get_bucket_location)
        # AWS answers None for us-east-1 (and "EU" for the oldest eu-west-1 buckets)
        loc = str(r.get("LocationConstraint") or "us-east-1")
        return "eu-west-1" if loc == "EU" else loc

    # documents ---------------------------------------------------------------------------
    def get_encryption(self) -> dict[str, Any] | None:
        r = self._get("encryption", "GET encryption", self._s3.get_bucket_encryption)
        return None if r is None else dict(r["ServerSideEncryptionConfiguration"])

    def put_encryption(self, doc: dict[str, Any]) -> None:
        self._call(
            "PUT encryption",
            self._s3.put_bucket_encryption,
            ServerSideEncryptionConfiguration=doc,
        )

    def get_public_access_block(self) -> dict[str, Any] | None:
        r = self._get(
            "public_access_block", "GET public access block", self._s3.get_public_access_block
        )
        return None if r is None else dict(r["PublicAccessBlockConfiguration"])

    def put_public_access_block(self, doc: dict[str, Any]) -> None:
        self._call(
            "PUT public access block",
            self._s3.put_public_access_block,
            PublicAccessBlockConfiguration=doc,
        )

    def get_policy(self) -> dict[str, Any] | None:
        r = self._get("policy", "GET policy", self._s3.get_bucket_policy)
        return None if r is None else dict(json.loads(r["Policy"]))

    def put_policy(self, doc: dict[str, Any]) -> None:
        self._call("PUT policy", self._s3.put_bucket_policy, Policy=json.dumps(doc))

    def delete_policy(self) -> None:
        self._call("DELETE policy", self._s3.delete_bucket_policy)

    def get_lifecycle(self) -> list[dict[str, Any]]:
        r = self._get("lifecycle", "GET lifecycle", self._s3.get_bucket_lifecycle_configuration)
        return [] if r is None else [dict(x) for x in r.get("Rules", [])]

    def put_lifecycle(self, rules: list[dict[str, Any]]) -> None:
        if not rules:
            self._call("DELETE lifecycle", self._s3.delete_bucket_lifecycle)
            return
        self._call(
            "PUT lifecycle",
            self._s3.put_bucket_lifecycle_configuration,
            LifecycleConfiguration={"Rules": rules},
        )


# Apply -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BucketSpec:
    """What ``apply_bucket`` makes of the bucket, as plain values (built from ``[s3]`` and
    ``[lifecycle]`` by ``wiring.bucket_spec``)."""

    region: str
    prefix: str  # our key prefix (normalized): the rules' filters
    endpoint_url: str  # "" = AWS
    deny_insecure_transport: Literal["auto", "on", "off"]
    retention: lifecycle.RetentionPolicy


def deny_insecure_transport(spec: BucketSpec) -> tuple[bool, str]:
    """Apply the non-TLS deny? Not over plain HTTP in "auto": it would deny camvault itself
    (and every later call, including the one that could remove it)."""
    if spec.deny_insecure_transport == "on":
        return True, ""
    if spec.deny_insecure_transport == "off":
        return False, "[lifecycle] deny_insecure_transport = off"
    if spec.endpoint_url.lower().startswith("http://"):
        return False, (
            f"endpoint {spec.endpoint_url} is plain HTTP: the statement would deny camvault's "
            "own requests (set deny_insecure_transport = on to force it)"
        )
    return True, ""


def apply_bucket(
    admin: BucketAdmin,
    spec: BucketSpec,
    *,
    known_cameras: Iterable[str] = (),
    dry_run: bool = False,
) -> ApplyReport:
    report = ApplyReport(admin.bucket, dry_run)
    report.warnings += lifecycle.retention_warnings(spec.retention)
    rules = lifecycle.lifecycle_rules(spec.retention, spec.prefix, known_cameras)
    tls, tls_reason = deny_insecure_transport(spec)
    statements = lifecycle.policy_statements(
        admin.bucket, region=spec.region, deny_insecure_transport=tls
    )

    if not admin.exists():
        if dry_run:
            report.add("bucket", "planned", f"create in {spec.region}")
            for r in rules:
                report.add(f"lifecycle rule {r['ID']}", "planned", lifecycle.describe_rule(r))
            for name in ("encryption", "public-access-block", "policy"):
                report.add(name, "planned", "set")
            return report
        if admin.create(spec.region):
            report.add("bucket", "created", f"in {spec.region}")
        else:  # another process created it between our HEAD and our CreateBucket
            report.add("bucket", "unchanged")
    else:
        report.add("bucket", "unchanged")
        if not spec.endpoint_url:  # only AWS tells regions apart meaningfully
            actual = admin.region()
            if actual and actual != spec.region:
                report.warnings.append(f"bucket is in {actual}, [s3] region says {spec.region}")

    _apply_doc(
        report,
        "encryption",
        admin.get_encryption,
        lambda cur: lifecycle.encryption_matches(cur),
        lambda: admin.put_encryption(lifecycle.encryption_document()),
        "SSE-S3 (AES256) by default",
    )
    _apply_doc(
        report,
        "public-access-block",
        admin.get_public_access_block,
        lambda cur: cur == lifecycle.PUBLIC_ACCESS_BLOCK,
        lambda: admin.put_public_access_block(dict(lifecycle.PUBLIC_ACCESS_BLOCK)),
        "all four blocks on",
    )
    _apply_lifecycle(report, admin, rules)
    _apply_policy(report, admin, statements)
    if not tls:
        report.add(
            f"policy statement {lifecycle.POLICY_SID_PREFIX}DenyInsecureTransport",
            "skipped",
            tls_reason,
        )
    return report


def _apply_doc(
    report: ApplyReport,
    name: str,
    get: Callable[[], Any],
    ok: Callable[[Any], bool],
    put: Callable[[], None],
    detail: str,
) -> None:
    try:
        current = get()
        if ok(current):
            report.add(name, "unchanged", detail)
            return
        if report.dry_run:
            report.add(name, "planned", detail)
            return
        put()
    except Unsupported as exc:
        report.add(name, "rejected", f"backend answered {exc}")
        return
    report.add(name, "created" if current is None else "updated", detail)


def _apply_lifecycle(report: ApplyReport, admin: BucketAdmin, rules: list[dict[str, Any]]) -> None:
    try:
        current = admin.get_lifecycle()
    except Unsupported as exc:
        for r in rules:
            report.add(f"lifecycle rule {r['ID']}", "rejected", f"backend answered {exc}")
        return
    foreign = [r for r in current if not lifecycle.is_ours(r)]
    have = {r["ID"]: lifecycle.normalize_rule(r) for r in current if lifecycle.is_ours(r)}
    want = {r["ID"]: lifecycle.normalize_rule(r) for r in rules}
    if have == want:
        for r in rules:
            report.add(f"lifecycle rule {r['ID']}", "unchanged", lifecycle.describe_rule(r))
        return
    if report.dry_run:
        for r in rules:
            action: Action = "unchanged" if have.get(r["ID"]) == want[r["ID"]] else "planned"
            report.add(f"lifecycle rule {r['ID']}", action, lifecycle.describe_rule(r))
        for rid in sorted(set(have) - set(want)):
            report.add(f"lifecycle rule {rid}", "planned", "remove (no longer configured)")
        return
    try:
        admin.put_lifecycle(foreign + rules)
        accepted = rules
    except Unsupported:
        # find out which rules the backend refuses: add them one at a time
        accepted = []
        for r in rules:
            try:
                admin.put_lifecycle([*foreign, *accepted, r])
                accepted.append(r)
            except Unsupported as exc:
                report.add(
                    f"lifecycle rule {r['ID']}",
                    "rejected",
                    f"{lifecycle.describe_rule(r)}: backend answered {exc}",
                )
        admin.put_lifecycle(foreign + accepted)
    for r in accepted:
        before = have.get(r["ID"])
        action = (
            "unchanged" if before == want[r["ID"]] else "created" if before is None else "updated"
        )
        report.add(f"lifecycle rule {r['ID']}", action, lifecycle.describe_rule(r))
    for rid in sorted(set(have) - set(want)):
        report.add(f"lifecycle rule {rid}", "updated", "removed (no longer configured)")


def _apply_policy(
    report: ApplyReport, admin: BucketAdmin, statements: list[dict[str, Any]]
) -> None:
    try:
        current = admin.get_policy()
    except Unsupported as exc:
        for s in statements:
            report.add(f"policy statement {s['Sid']}", "rejected", f"backend answered {exc}")
        return
    desired = lifecycle.merge_policy(current, statements)
    if current is not None and lifecycle.policy_equal(current, desired):
        for s in statements:
            report.add(f"policy statement {s['Sid']}", "unchanged")
        return
    if report.dry_run:
        for s in statements:
            report.add(f"policy statement {s['Sid']}", "planned")
        return
    try:
        admin.put_policy(desired)
        accepted = statements
    except Unsupported:
        accepted = []
        for s in statements:
            try:
                admin.put_policy(lifecycle.merge_policy(current, [*accepted, s]))
                accepted.append(s)
            except Unsupported as exc:
                report.add(f"policy statement {s['Sid']}", "rejected", f"backend answered {exc}")
        if accepted:
            admin.put_policy(lifecycle.merge_policy(current, accepted))
    ours_before = {
        str(s.get("Sid")): s
        for s in (current or {}).get("Statement", [])
        if str(s.get("Sid", "")).startswith(lifecycle.POLICY_SID_PREFIX)
    }
    for s in accepted:
        before = ours_before.get(s["Sid"])
        if before is None:
            report.add(f"policy statement {s['Sid']}", "created")
        elif lifecycle.policy_equal(before, s):
            report.add(f"policy statement {s['Sid']}", "unchanged")
        else:
            report.add(f"policy statement {s['Sid']}", "updated")
