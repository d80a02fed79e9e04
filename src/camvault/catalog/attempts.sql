-- Named queries for upload_attempts (0006): every failed upload attempt and its round's
-- outcome. Loaded by camvault.catalog.attempts.

-- name: upsert_attempt
-- Idempotent per (segment, attempt): a journaled row flushed twice, or its outcome sent
-- before/after the row itself, converges. An outcome never goes back to 'pending'.
INSERT INTO upload_attempts (camera_id, segment_id, s3_key, round, attempt, error_class,
                             error_code, message, bytes_sent, node, occurred_at,
                             round_outcome, round_ended_at)
VALUES (%(camera_id)s, %(segment_id)s, %(s3_key)s, %(round)s, %(attempt)s, %(error_class)s,
        %(error_code)s, %(message)s, %(bytes_sent)s, %(node)s, %(occurred_at)s,
        %(round_outcome)s, %(round_ended_at)s)
ON CONFLICT (segment_id, attempt) DO UPDATE
   SET round_outcome = EXCLUDED.round_outcome,
       round_ended_at = EXCLUDED.round_ended_at
 WHERE EXCLUDED.round_outcome <> 'pending';

-- name: recent_attempts
SELECT id, camera_id, segment_id, s3_key, round, attempt, error_class, error_code, message,
       bytes_sent, node, occurred_at, round_outcome, round_ended_at
  FROM upload_attempts
 WHERE (%(camera_id)s::text IS NULL OR camera_id = %(camera_id)s)
 ORDER BY occurred_at DESC, id DESC
 LIMIT %(limit)s;

-- name: attempts_per_camera
-- Failed attempts per camera since a time, and how the rounds they belonged to ended.
SELECT camera_id,
       count(*) AS failed_attempts,
       count(*) FILTER (WHERE round_outcome = 'succeeded') AS recovered_by_retry,
       count(DISTINCT (segment_id, round)) FILTER (WHERE round_outcome = 'failed')
           AS failed_rounds,
       max(occurred_at) AS last_error_at,
       (array_agg(error_class ORDER BY occurred_at DESC))[1] AS last_error_class
  FROM upload_attempts
 WHERE occurred_at >= %(since)s
 GROUP BY camera_id
 ORDER BY camera_id;

-- name: ping
SELECT 1 AS ok;
