-- Named queries of the lifecycle mirror: retention sync, tombstones, Glacier restores.
-- Loaded by camvault.catalog.queries with filename="lifecycle.sql".

-- name: live_recordings_page
-- Keyset pagination over one camera's live rows in one bucket.
SELECT id, start_time, camera_id, s3_bucket, s3_key, size_bytes, storage_class, created_at,
       expected_storage_class, archive_class, archive_at, expires_at
  FROM recordings
 WHERE camera_id = %(camera_id)s
   AND s3_bucket = %(s3_bucket)s
   AND deleted_at IS NULL
   AND (start_time, id) > (%(after_start)s, %(after_id)s)
 ORDER BY start_time, id
 LIMIT %(limit)s;

-- name: cameras_with_live_recordings
SELECT c.id FROM cameras c
 WHERE EXISTS (SELECT 1 FROM recordings r
                WHERE r.camera_id = c.id AND r.s3_bucket = %(s3_bucket)s
                  AND r.deleted_at IS NULL)
 ORDER BY c.id;

-- name: update_lifecycle_state
UPDATE recordings
   SET storage_class = %(storage_class)s,
       expected_storage_class = %(expected_storage_class)s,
       archive_class = %(archive_class)s,
       archive_at = %(archive_at)s,
       expires_at = %(expires_at)s,
       lifecycle_checked_at = %(checked_at)s
 WHERE id = %(id)s AND start_time = %(start_time)s;

-- name: tombstone_recording
UPDATE recordings
   SET deleted_at = %(deleted_at)s,
       deleted_reason = %(reason)s,
       expires_at = coalesce(%(expires_at)s, expires_at),
       lifecycle_checked_at = %(deleted_at)s
 WHERE id = %(id)s AND start_time = %(start_time)s AND deleted_at IS NULL
RETURNING id;

-- name: get_recording_with_restore
SELECT r.*, s.status AS restore_status, s.tier AS restore_tier, s.days AS restore_days,
       s.requested_at AS restore_requested_at, s.restored_until AS restore_until,
       s.requested_by AS restore_requested_by
  FROM recordings r
  LEFT JOIN restores s ON s.recording_id = r.id AND s.recording_start = r.start_time
 WHERE r.id = %(id)s;

-- name: upsert_restore
INSERT INTO restores (recording_id, recording_start, camera_id, s3_bucket, s3_key, status,
                      tier, days, requested_by, requested_at, restored_until, checked_at,
                      detail)
VALUES (%(recording_id)s, %(recording_start)s, %(camera_id)s, %(s3_bucket)s, %(s3_key)s,
        %(status)s, %(tier)s, %(days)s, %(requested_by)s, %(at)s, %(restored_until)s,
        %(at)s, %(detail)s)
ON CONFLICT (recording_id, recording_start) DO UPDATE
   SET status = EXCLUDED.status, tier = EXCLUDED.tier, days = EXCLUDED.days,
       requested_by = EXCLUDED.requested_by, requested_at = EXCLUDED.requested_at,
       restored_until = EXCLUDED.restored_until, checked_at = EXCLUDED.checked_at,
       detail = EXCLUDED.detail;

-- name: update_restore_status
UPDATE restores
   SET status = %(status)s, restored_until = %(restored_until)s, checked_at = %(at)s,
       detail = coalesce(%(detail)s, detail)
 WHERE recording_id = %(recording_id)s AND recording_start = %(recording_start)s
RETURNING status;

-- name: pending_restores
SELECT recording_id, recording_start, camera_id, s3_bucket, s3_key, status, tier, days,
       requested_by, requested_at, restored_until
  FROM restores
 WHERE status IN ('requested', 'in_progress')
    OR (status = 'restored' AND restored_until <= %(now)s)
 ORDER BY requested_at
 LIMIT %(limit)s;

-- name: insert_audit
INSERT INTO audit_log (user_id, user_name, actor, action, camera_id, recording_id,
                       recording_start, s3_key, client_addr, user_agent, detail)
VALUES (%(user_id)s, %(user_name)s, %(actor)s, %(action)s, %(camera_id)s, %(recording_id)s,
        %(recording_start)s, %(s3_key)s, %(client_addr)s, %(user_agent)s, %(detail)s::jsonb);
