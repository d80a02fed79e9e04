-- Named queries of the timeline (camvault.catalog.timeline), run as camvault_api with the
-- acting user set: row-level security decides which recordings exist for the caller.

-- name: timeline_spans
-- Gaps and islands: a recording continues the previous one's span when it begins within
-- `tolerance` of its end with the same storage state and codec. Only the rows where a span
-- starts or ends survive the filter (a few dozen of 8,640), and each start row is paired
-- with its end row by lead(): no sort or aggregate over all rows. row_number() gives the
-- count. Bounded index range scan as in recordings_page (max 6 h per row).
WITH recs AS (
    SELECT r.start_time, r.end_time, r.codec,
           CASE
               WHEN upper(r.storage_class) NOT IN ('GLACIER', 'DEEP_ARCHIVE') THEN r.storage_class
               WHEN x.status = 'restored'
                    AND (x.restored_until IS NULL OR x.restored_until > now()) THEN 'restored'
               WHEN x.status IN ('requested', 'in_progress') THEN 'restoring'
               ELSE 'archived'
           END AS state
      FROM recordings r
      LEFT JOIN restores x ON x.recording_id = r.id AND x.recording_start = r.start_time
     WHERE r.camera_id = %(camera_id)s
       AND r.end_time > %(start)s
       AND r.start_time < %(end)s
       AND r.start_time > %(start)s::timestamptz - interval '6 hours'
       AND r.deleted_at IS NULL
), marked AS (
    SELECT start_time, end_time, codec, state, row_number() OVER w AS rn,
           (start_time <= lag(end_time) OVER w + %(tolerance)s::interval
            AND state = lag(state) OVER w AND codec = lag(codec) OVER w) IS NOT TRUE AS starts,
           (lead(start_time) OVER w <= end_time + %(tolerance)s::interval
            AND lead(state) OVER w = state AND lead(codec) OVER w = codec) IS NOT TRUE AS ends
      FROM recs
    WINDOW w AS (ORDER BY start_time)
), edges AS (
    SELECT *,
           CASE WHEN ends THEN end_time ELSE lead(end_time) OVER e END AS span_end,
           CASE WHEN ends THEN rn ELSE lead(rn) OVER e END AS end_rn
      FROM marked
     WHERE starts OR ends
    WINDOW e AS (ORDER BY start_time)
)
SELECT start_time, span_end AS end_time, state, end_rn - rn + 1 AS recordings,
       ARRAY[codec] AS codecs
  FROM edges
 WHERE starts
 ORDER BY start_time;

-- name: playlist_recordings
-- The recordings of a playlist, oldest first, with the same storage state as the spans.
SELECT r.id, r.start_time, r.end_time, r.duration_seconds, r.codec, r.storage_class,
       CASE
           WHEN upper(r.storage_class) NOT IN ('GLACIER', 'DEEP_ARCHIVE') THEN r.storage_class
           WHEN x.status = 'restored'
                AND (x.restored_until IS NULL OR x.restored_until > now()) THEN 'restored'
           WHEN x.status IN ('requested', 'in_progress') THEN 'restoring'
           ELSE 'archived'
       END AS state
  FROM recordings r
  LEFT JOIN restores x ON x.recording_id = r.id AND x.recording_start = r.start_time
 WHERE r.camera_id = %(camera_id)s
   AND r.end_time > %(start)s
   AND r.start_time < %(end)s
   AND r.start_time > %(start)s::timestamptz - interval '6 hours'
   AND r.deleted_at IS NULL
 ORDER BY r.start_time
 LIMIT %(limit)s;
