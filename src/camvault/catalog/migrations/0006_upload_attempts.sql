-- camvault catalog, version 6: every failed upload attempt, not only exhausted rounds.
--
-- UC04's exception flow: "if network disconnection occurs during S3 upload ... an error is
-- logged in RDS". `upload_errors` (0001) has one row per failed *round*; a cut that a later
-- retry of the same round recovers from left no trace. One row per failed attempt here,
-- written (or journaled in the spool while PostgreSQL is down, then flushed) as it happens,
-- and updated with the round's outcome when the round ends.

CREATE TABLE upload_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    camera_id     text NOT NULL,
    segment_id    text NOT NULL,
    s3_key        text NOT NULL,
    round         integer NOT NULL CHECK (round >= 1),
    attempt       integer NOT NULL CHECK (attempt >= 1),  -- cumulative over all rounds
    error_class   text NOT NULL,                            -- network, s3:<Code>, conflict, …
    error_code    text NOT NULL,                            -- S3 code or exception type
    message       text NOT NULL,
    bytes_sent    bigint CHECK (bytes_sent >= 0),           -- NULL = not known (single PUT)
    node          text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    -- pending: round still running; interrupted: stopped before its retries ran out
    -- (shutdown, crash, or the endpoint's circuit breaker opened)
    round_outcome text NOT NULL DEFAULT 'pending'
        CHECK (round_outcome IN ('pending', 'succeeded', 'failed', 'interrupted')),
    round_ended_at timestamptz
);
-- a journaled attempt flushed twice is still one row
CREATE UNIQUE INDEX upload_attempts_segment_attempt_idx ON upload_attempts (segment_id, attempt);
CREATE INDEX upload_attempts_camera_time_idx ON upload_attempts (camera_id, occurred_at DESC);
CREATE INDEX upload_attempts_time_idx ON upload_attempts (occurred_at DESC);

ALTER TABLE upload_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY upload_attempts_service ON upload_attempts FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
-- operational data about every camera: admins only
CREATE POLICY upload_attempts_api_select ON upload_attempts FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin()));
GRANT SELECT, INSERT, UPDATE, DELETE ON upload_attempts TO camvault_service;
GRANT SELECT ON upload_attempts TO camvault_api;
