-- Named queries of the catalog, loaded by camvault.catalog.queries (procrastinate style).
-- Parameters use psycopg's %(name)s placeholders.

-- name: upsert_camera
INSERT INTO cameras (id, name, segment_seconds, enabled)
VALUES (%(id)s, %(name)s, %(segment_seconds)s, %(enabled)s)
ON CONFLICT (id) DO UPDATE
   SET name = EXCLUDED.name,
       segment_seconds = EXCLUDED.segment_seconds,
       enabled = EXCLUDED.enabled
RETURNING id, name, segment_seconds, enabled, created_at;

-- name: get_camera
SELECT id, name, segment_seconds, enabled, created_at FROM cameras WHERE id = %(id)s;

-- name: list_cameras
SELECT id, name, segment_seconds, enabled, created_at FROM cameras ORDER BY id;

-- name: ensure_partition
SELECT camvault_ensure_partition(%(ts)s) AS name;

-- name: ensure_partitions
SELECT camvault_ensure_partitions(%(months_back)s, %(months_ahead)s) AS name;

-- name: insert_recording
-- expected_storage_class .. expires_at: what the configured lifecycle rules will do to the
-- object (NULL when unknown); `retention sync` confirms them against the bucket's rules.
INSERT INTO recordings (camera_id, start_time, end_time, duration_seconds, s3_bucket, s3_key,
                        size_bytes, checksum_algorithm, checksum, codec, width, height,
                        storage_class, sse, etag, run_id, expected_storage_class,
                        archive_class, archive_at, expires_at, node_id)
VALUES (%(camera_id)s, %(start_time)s, %(end_time)s, %(duration_seconds)s, %(s3_bucket)s,
        %(s3_key)s, %(size_bytes)s, %(checksum_algorithm)s, %(checksum)s, %(codec)s,
        %(width)s, %(height)s, %(storage_class)s, %(sse)s, %(etag)s, %(run_id)s,
        %(expected_storage_class)s, %(archive_class)s, %(archive_at)s, %(expires_at)s,
        %(node_id)s)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: get_recording_at
SELECT * FROM recordings WHERE camera_id = %(camera_id)s AND start_time = %(start_time)s;

-- name: get_recording_by_key
SELECT * FROM recordings WHERE s3_bucket = %(s3_bucket)s AND s3_key = %(s3_key)s;

-- name: list_recordings
-- Overlap semantics: a segment that straddles `start` is included. Tombstones (objects
-- gone, rows kept for the audit trail; see 0003_lifecycle.sql) are never listed.
SELECT * FROM recordings
 WHERE camera_id = %(camera_id)s
   AND deleted_at IS NULL
   AND end_time > %(start)s
   AND start_time < %(end)s
 ORDER BY start_time
 LIMIT %(limit)s;

-- name: last_recording_per_camera
SELECT DISTINCT ON (camera_id) camera_id, start_time, end_time, s3_key, created_at
  FROM recordings
 ORDER BY camera_id, start_time DESC;

-- name: insert_upload_error
INSERT INTO upload_errors (camera_id, segment_id, s3_key, attempts, error_class, message,
                           node, occurred_at)
VALUES (%(camera_id)s, %(segment_id)s, %(s3_key)s, %(attempts)s, %(error_class)s,
        %(message)s, %(node)s, %(occurred_at)s)
ON CONFLICT (segment_id, attempts) DO NOTHING;

-- name: list_upload_errors
SELECT * FROM upload_errors
 WHERE (%(camera_id)s::text IS NULL OR camera_id = %(camera_id)s)
 ORDER BY occurred_at DESC
 LIMIT %(limit)s;
