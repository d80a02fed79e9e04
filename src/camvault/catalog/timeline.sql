-- Named queries of the timeline (camvault.catalog.timeline), run as camvault_api with the
-- acting user set: row-level security decides which recordings exist for the caller.

-- name: timeline_spans
-- Gaps and islands: a recording continues the previous one's span when it begins within
-- `tolerance` of its end with the same storage state and codec. Only the rows where a span
-- starts or ends survive the filter (a few dozen of 8,640), and each start row is paired
-- with its end row by lead(): no sort or aggregate over all rows. row_number() gives the
-- count. Bounded index range scan as in recordings_page (max 6 h per row).
WITH rows AS (
    SELECT r.start_time, r.end_time, r.codec,
           camvault_storage_state(r.storage_class, x.status, x.restored_until) AS state,
           -- what the caller may see of the row (see recordings_page): a windowed grant
           -- shows every overlapping recording, but only its part inside the window
           camvault_visible_range(r.camera_id, r.start_time, r.end_time,
                                  (SELECT camvault_acl_cameras()), (SELECT camvault_is_admin()))
               AS visible  -- NULL: the whole recording
      FROM recordings r
      LEFT JOIN restores x ON x.recording_id = r.id AND x.recording_start = r.start_time
     WHERE r.camera_id = %(camera_id)s
       AND r.end_time > %(start)s
       AND r.start_time < %(end)s
       AND r.start_time > %(start)s::timestamptz - interval '6 hours'
       AND r.deleted_at IS NULL
), recs AS (
    -- whole recordings as they are (no range arithmetic for the common case); windowed
    -- ones one row per visible sub-range — INNER lateral join: an empty multirange gives
    -- no row (never the whole recording)
    SELECT start_time, end_time, codec, state FROM rows WHERE visible IS NULL
    UNION ALL
    SELECT greatest(lower(v.r), rows.start_time), least(upper(v.r), rows.end_time),
           rows.codec, rows.state
      FROM rows
      CROSS JOIN LATERAL unnest(rows.visible) AS v(r)
     WHERE rows.visible IS NOT NULL AND lower(v.r) < upper(v.r)
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
-- The playlist entries, oldest first, with the same storage state as the spans: one per
-- visible sub-range of each recording (a windowed grant shows only its window), with
-- `clipped` when the entry is not the whole recording.
WITH rows AS (
    SELECT r.id, r.start_time AS rec_start, r.end_time AS rec_end, r.codec,
           r.storage_class, r.duration_seconds AS rec_seconds, r.s3_bucket, r.s3_key,
           camvault_storage_state(r.storage_class, x.status, x.restored_until) AS state,
           coalesce(camvault_visible_range(r.camera_id, r.start_time, r.end_time,
                                           (SELECT camvault_acl_cameras()),
                                           (SELECT camvault_is_admin())),
                    tstzmultirange(tstzrange(r.start_time, r.end_time))) AS visible
      FROM recordings r
      LEFT JOIN restores x ON x.recording_id = r.id AND x.recording_start = r.start_time
     WHERE r.camera_id = %(camera_id)s
       AND r.end_time > %(start)s
       AND r.start_time < %(end)s
       AND r.start_time > %(start)s::timestamptz - interval '6 hours'
       AND r.deleted_at IS NULL
), parts AS (
    SELECT rows.id, rows.rec_start, rows.rec_end, rows.rec_seconds, rows.codec,
           rows.storage_class, rows.state, rows.s3_bucket, rows.s3_key,
           greatest(lower(v.r), rows.rec_start) AS start_time,
           least(upper(v.r), rows.rec_end) AS end_time
      FROM rows
      CROSS JOIN LATERAL unnest(rows.visible) AS v(r)  -- empty: no entry
     WHERE lower(v.r) < upper(v.r)
)
SELECT id, start_time, end_time, codec, storage_class, state, clipped, rec_start,
       s3_bucket, s3_key,
       CASE WHEN clipped THEN extract(epoch FROM end_time - start_time)::float8
            ELSE rec_seconds END AS duration_seconds
  FROM (SELECT *, (start_time, end_time) IS DISTINCT FROM (rec_start, rec_end) AS clipped
          FROM parts) p
 ORDER BY start_time, id
 LIMIT %(limit)s;
