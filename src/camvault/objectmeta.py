"""Self-describing objects: the ``x-amz-meta-*`` headers every upload carries, and the
inverse that rebuilds a catalog row from an object alone (the reconciler's orphan scan).

Pure functions. boto3 adds the ``x-amz-meta-`` prefix; keys here are the bare names.
"""

from __future__ import annotations

from datetime import datetime

from camvault.errors import InputError
from camvault.models import Recording, Segment, StoredObject

META_VERSION = "1"
REQUIRED = ("camera-id", "start", "end", "duration", "checksum", "codec")


def object_metadata(seg: Segment) -> dict[str, str]:
    meta = {
        "camvault": META_VERSION,
        "camera-id": seg.camera_id,
        "start": seg.start_time.isoformat(),
        "end": seg.end_time.isoformat(),
        "duration": repr(seg.duration_seconds),  # exact round trip for the orphan scan
        "checksum": f"{seg.checksum_algorithm}:{seg.checksum}",
        "codec": seg.codec,
        "width": str(seg.width),
        "height": str(seg.height),
    }
    if seg.run_id:
        meta["run-id"] = seg.run_id
    return meta


def checksum_of(meta: dict[str, str]) -> tuple[str, str] | None:
    value = meta.get("checksum", "")
    algo, sep, digest = value.partition(":")
    return (algo, digest) if sep and algo and digest else None


def recording_from_object(obj: StoredObject) -> Recording:
    """The catalog row an object describes; ``InputError`` names the header that is wrong."""
    meta = obj.metadata
    missing = [k for k in REQUIRED if not meta.get(k)]
    if missing:
        raise InputError(f"{obj.key}: missing metadata header(s) x-amz-meta-{', '.join(missing)}")
    cs = checksum_of(meta)
    if cs is None:
        raise InputError(f"{obj.key}: malformed x-amz-meta-checksum {meta['checksum']!r}")
    try:
        start = datetime.fromisoformat(meta["start"])
        end = datetime.fromisoformat(meta["end"])
        duration = float(meta["duration"])
        width, height = int(meta.get("width", "0")), int(meta.get("height", "0"))
    except ValueError as exc:
        raise InputError(f"{obj.key}: malformed metadata: {exc}") from exc
    if start.tzinfo is None or end.tzinfo is None:
        raise InputError(f"{obj.key}: start/end metadata without a time zone")
    return Recording(
        camera_id=meta["camera-id"],
        start_time=start,
        end_time=end,
        duration_seconds=duration,
        s3_bucket=obj.bucket,
        s3_key=obj.key,
        size_bytes=obj.size_bytes,
        checksum_algorithm=cs[0],
        checksum=cs[1],
        codec=meta["codec"],
        width=width,
        height=height,
        storage_class=obj.storage_class,
        sse=obj.sse,
        etag=obj.etag,
        run_id=meta.get("run-id") or None,
    )


def recording_from_segment(seg: Segment, obj: StoredObject) -> Recording:
    return Recording(
        camera_id=seg.camera_id,
        start_time=seg.start_time,
        end_time=seg.end_time,
        duration_seconds=seg.duration_seconds,
        s3_bucket=obj.bucket,
        s3_key=seg.s3_key,
        size_bytes=seg.size_bytes,
        checksum_algorithm=seg.checksum_algorithm,
        checksum=seg.checksum,
        codec=seg.codec,
        width=seg.width,
        height=seg.height,
        storage_class=obj.storage_class,
        sse=obj.sse,
        etag=obj.etag,
        run_id=seg.run_id,
    )
