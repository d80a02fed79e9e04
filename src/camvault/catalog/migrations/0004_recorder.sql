-- camvault catalog, version 4: the recorder's runs, camera status and recording gaps.
--
-- A run is one continuous connection to a camera: its segments abut, so a gap in a
-- camera's footage is exactly a change of run_id between consecutive recordings. Runs and
-- status are reported best effort (recording goes on while PostgreSQL is down); the gaps
-- themselves come from the recordings, which reach the catalog durably through the spool.

CREATE TABLE recorder_runs (
    id          text PRIMARY KEY,
    camera_id   text NOT NULL REFERENCES cameras (id),
    node        text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text,
    segments    integer NOT NULL DEFAULT 0,
    size_bytes  bigint NOT NULL DEFAULT 0,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX recorder_runs_camera_idx ON recorder_runs (camera_id, started_at DESC);

-- The latest state of each recorded camera: 'recording' since the run began, or
-- 'offline' since the stream was lost (kept across failed reconnects).
CREATE TABLE camera_status (
    camera_id  text PRIMARY KEY REFERENCES cameras (id),
    state      text NOT NULL CHECK (state IN ('recording', 'offline')),
    since      timestamptz NOT NULL,
    detail     text NOT NULL DEFAULT '',
    node       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Gaps between a camera's consecutive recordings from different runs. security_invoker:
-- a user sees only the gaps between recordings row-level security lets them see.
CREATE VIEW recording_gaps WITH (security_invoker = true) AS
SELECT camera_id, gap_start, gap_end, run_before, run_after
  FROM (SELECT camera_id,
               lag(end_time) OVER w AS gap_start,
               start_time AS gap_end,
               lag(run_id) OVER w AS run_before,
               run_id AS run_after
          FROM recordings
        WINDOW w AS (PARTITION BY camera_id ORDER BY start_time)) AS r
 WHERE gap_start IS NOT NULL
   AND run_after IS DISTINCT FROM run_before;
