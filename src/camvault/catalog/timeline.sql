-- Named queries of the timeline (camvault.catalog.timeline), run as camvault_api with the
-- acting user set: row-level security decides which recordings exist for the caller.

-- name: timeline_spans
-- Gaps and islands: a recording starts a new span unless it begins within `tolerance` of
-- the previous one's end and has the same storage state; the running sum of those starts
-- numbers the islands. Bounded index range scan as in recordings_page (max 6 h per row).
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
    SELECT *,
           CASE WHEN start_time <= lag(end_time) OVER w + %(tolerance)s::interval
                 AND state = lag(state) OVER w THEN 0 ELSE 1 END AS starts_span
      FROM recs
    WINDOW w AS (ORDER BY start_time)
), islands AS (
    SELECT *, sum(starts_span) OVER (ORDER BY start_time ROWS UNBOUNDED PRECEDING) AS island
      FROM marked
)
SELECT min(start_time) AS start_time, max(end_time) AS end_time, state,
       count(*) AS recordings, array_agg(DISTINCT codec ORDER BY codec) AS codecs
  FROM islands
 GROUP BY island, state
 ORDER BY min(start_time);

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
