-- camvault catalog, version 3: the catalog mirrors the bucket's lifecycle rules.
--
-- Each recording carries what the rules in force say about its object (filled and kept
-- current by `camvault retention sync`): the class it should be in, when it moves to the
-- archive class, when S3 deletes it. A recording whose object is gone is never deleted
-- from the catalog: it becomes a tombstone (deleted_at set) that listings hide and the
-- audit trail keeps. Glacier restores are tracked in `restores`, one row per recording.

ALTER TABLE recordings
    ADD COLUMN expected_storage_class text,
    ADD COLUMN archive_class          text,
    ADD COLUMN archive_at             timestamptz,
    ADD COLUMN expires_at             timestamptz,
    ADD COLUMN lifecycle_checked_at   timestamptz,
    ADD COLUMN deleted_at             timestamptz,
    ADD COLUMN deleted_reason         text
        CHECK (deleted_reason IN ('expired', 'vanished')),
    ADD CHECK ((deleted_at IS NULL) = (deleted_reason IS NULL));

-- retention sync walks live rows of one camera in start order; due expiries by time
CREATE INDEX recordings_live_idx ON recordings (camera_id, start_time) WHERE deleted_at IS NULL;
CREATE INDEX recordings_expires_idx ON recordings (expires_at) WHERE deleted_at IS NULL;

CREATE TABLE restores (
    recording_id    bigint NOT NULL,
    recording_start timestamptz NOT NULL,  -- with the id, the recording's primary key
    camera_id       text NOT NULL,
    s3_bucket       text NOT NULL,
    s3_key          text NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('requested', 'in_progress', 'restored', 'expired', 'failed')),
    tier            text NOT NULL CHECK (tier IN ('Expedited', 'Standard', 'Bulk')),
    days            integer NOT NULL CHECK (days >= 1),
    requested_by    bigint,  -- users.id; no FK: the trail outlives the user
    requested_at    timestamptz NOT NULL DEFAULT now(),
    restored_until  timestamptz,  -- expiry-date of x-amz-restore
    checked_at      timestamptz,
    detail          text NOT NULL DEFAULT '',
    PRIMARY KEY (recording_id, recording_start)
);
CREATE INDEX restores_pending_idx ON restores (requested_at)
    WHERE status IN ('requested', 'in_progress');

-- The API may read and write the restore row of a recording it can see: visibility is the
-- recordings policy itself, evaluated inside the EXISTS under the API's role.
ALTER TABLE restores ENABLE ROW LEVEL SECURITY;
ALTER TABLE restores FORCE ROW LEVEL SECURITY;
CREATE POLICY restores_service ON restores FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
CREATE POLICY restores_api ON restores FOR ALL TO camvault_api
    USING (EXISTS (SELECT 1 FROM recordings r
                    WHERE r.id = recording_id AND r.start_time = recording_start))
    WITH CHECK (EXISTS (SELECT 1 FROM recordings r
                         WHERE r.id = recording_id AND r.start_time = recording_start));
GRANT SELECT, INSERT, UPDATE ON restores TO camvault_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON restores TO camvault_service;
