-- Named queries of clip exports (camvault.export). The request side runs as the caller
-- (camvault_api, row-level security); workers run as the service role.

-- name: acl_range
-- What of [start, end] the acting user may see with at least `perm` (tstzmultirange).
SELECT camvault_acl_range(%(camera_id)s, %(start)s, %(end)s, %(perm)s) AS r;

-- name: allowed_start
-- Start of the caller's contiguous export coverage that contains `start`, looking back
-- `lookback` (a keyframe before `start` may be used only if not earlier than this).
SELECT lower(x) AS lo
  FROM unnest(camvault_acl_range(%(camera_id)s, %(start)s::timestamptz - %(lookback)s,
                                 %(start)s, 'export')) AS x
 WHERE x @> %(start)s::timestamptz;

-- name: range_recordings
-- Recordings overlapping [start, end), oldest first (bounded: max_export_minutes).
SELECT * FROM recordings
 WHERE camera_id = %(camera_id)s
   AND end_time > %(start)s
   AND start_time < %(end)s
   AND start_time > %(start)s::timestamptz - interval '6 hours'
   AND deleted_at IS NULL
 ORDER BY start_time, id;

-- name: recordings_by_id
SELECT * FROM recordings
 WHERE id = ANY (%(ids)s) AND camera_id = %(camera_id)s AND deleted_at IS NULL
 ORDER BY start_time, id;

-- name: insert_export
INSERT INTO exports (requested_by, requester_name, camera_id, range_start, range_end,
                     allowed_start, recording_ids)
VALUES (%(requested_by)s, %(requester_name)s, %(camera_id)s, %(start)s, %(end)s,
        %(allowed_start)s, %(recording_ids)s)
RETURNING *;

-- name: get_export
SELECT * FROM exports WHERE id = %(id)s;

-- name: list_exports
SELECT * FROM exports
 WHERE (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: claim_export
-- The oldest queued job, or a running one whose worker stopped beating (died): several
-- processes share the queue, SKIP LOCKED keeps them off each other's rows.
UPDATE exports e
   SET state = 'running', attempts = e.attempts + 1, worker = %(worker)s,
       heartbeat_at = now(), started_at = coalesce(e.started_at, now()), progress = 0
 WHERE e.id = (SELECT id FROM exports
                WHERE (state = 'queued'
                       OR (state = 'running'
                           AND heartbeat_at < now() - make_interval(secs => %(stale)s)))
                  AND (%(id)s::bigint IS NULL OR id = %(id)s)
                ORDER BY id
                FOR UPDATE SKIP LOCKED
                LIMIT 1)
RETURNING e.*;

-- name: beat_export
-- Heartbeat and progress; no row back = another worker took the job over.
UPDATE exports SET heartbeat_at = now(), progress = %(progress)s
 WHERE id = %(id)s AND worker = %(worker)s AND state = 'running'
RETURNING id;

-- name: plan_export
UPDATE exports
   SET cut = %(cut)s, actual_start = %(actual_start)s, actual_end = %(actual_end)s,
       gaps = %(gaps)s, s3_bucket = %(s3_bucket)s, s3_key = %(s3_key)s,
       assembly = %(assembly)s
 WHERE id = %(id)s AND worker = %(worker)s AND state = 'running'
RETURNING id;

-- name: finish_export
UPDATE exports
   SET state = 'done', progress = 100, size_bytes = %(size_bytes)s, sha256 = %(sha256)s,
       sse = %(sse)s, finished_at = now(), heartbeat_at = now(), error = NULL
 WHERE id = %(id)s AND worker = %(worker)s AND state = 'running'
RETURNING *;

-- name: fail_export
UPDATE exports
   SET state = 'failed', error = %(error)s, finished_at = now()
 WHERE id = %(id)s AND state IN ('queued', 'running')
   AND (%(worker)s::text IS NULL OR worker = %(worker)s)
RETURNING *;

-- name: live_exports
-- Jobs a live worker is running (heartbeat fresh), by id or by object key: their
-- temporary files are in use, and so is their multipart upload (the sweeper keeps it).
SELECT id FROM exports
 WHERE (id = ANY (%(ids)s::bigint[]) OR s3_key = ANY (%(keys)s::text[])) AND state = 'running'
   AND heartbeat_at >= now() - make_interval(secs => %(stale)s);
