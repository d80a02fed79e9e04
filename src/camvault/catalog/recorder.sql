-- Named queries of the recorder's status reports (camvault.catalog.runs).

-- name: run_started
INSERT INTO recorder_runs (id, camera_id, node, started_at)
VALUES (%(run_id)s, %(camera_id)s, %(node)s, %(at)s)
ON CONFLICT (id) DO NOTHING;

-- name: run_ended
INSERT INTO recorder_runs (id, camera_id, node, started_at, ended_at, end_reason, segments,
                           size_bytes)
VALUES (%(run_id)s, %(camera_id)s, %(node)s, %(at)s, %(at)s, %(reason)s, %(segments)s,
        %(size)s)
ON CONFLICT (id) DO UPDATE
   SET ended_at = EXCLUDED.ended_at,
       end_reason = EXCLUDED.end_reason,
       segments = EXCLUDED.segments,
       size_bytes = EXCLUDED.size_bytes;

-- name: set_camera_status
-- 'offline' keeps its first `since` while the camera stays offline (failed reconnects).
INSERT INTO camera_status (camera_id, state, since, detail, node)
VALUES (%(camera_id)s, %(state)s, %(since)s, %(detail)s, %(node)s)
ON CONFLICT (camera_id) DO UPDATE
   SET since = CASE WHEN camera_status.state = EXCLUDED.state AND EXCLUDED.state = 'offline'
                    THEN camera_status.since ELSE EXCLUDED.since END,
       state = EXCLUDED.state,
       detail = EXCLUDED.detail,
       node = EXCLUDED.node,
       updated_at = now();

-- name: camera_status
SELECT camera_id, state, since, detail, node, updated_at FROM camera_status ORDER BY camera_id;

-- name: recording_gaps
SELECT camera_id, gap_start, gap_end, run_before, run_after
  FROM recording_gaps
 WHERE camera_id = %(camera_id)s
 ORDER BY gap_start;
