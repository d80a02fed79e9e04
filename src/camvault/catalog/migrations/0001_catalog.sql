-- camvault catalog, version 1: cameras, recordings (monthly partitions), upload_errors.
-- Applied inside one transaction by `camvault db migrate`; recorded in schema_migrations.

CREATE TABLE cameras (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name            text NOT NULL DEFAULT '',
    segment_seconds integer CHECK (segment_seconds BETWEEN 1 AND 3600),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per object in S3. Partitioned by month of start_time: retention deletes and
-- time-range scans touch few partitions. Unique constraints on a partitioned table must
-- include the partition key; (camera_id, start_time) is the object's identity because the
-- key is derived from it.
CREATE TABLE recordings (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    camera_id          text NOT NULL REFERENCES cameras (id),
    start_time         timestamptz NOT NULL,
    end_time           timestamptz NOT NULL,
    duration_seconds   double precision NOT NULL CHECK (duration_seconds >= 0),
    s3_bucket          text NOT NULL,
    s3_key             text NOT NULL,
    size_bytes         bigint NOT NULL CHECK (size_bytes > 0),
    checksum_algorithm text NOT NULL,
    checksum           text NOT NULL,
    codec              text NOT NULL,
    width              integer NOT NULL,
    height             integer NOT NULL,
    storage_class      text NOT NULL DEFAULT 'STANDARD',
    sse                text,
    etag               text NOT NULL,
    run_id             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (end_time >= start_time),
    PRIMARY KEY (id, start_time),
    UNIQUE (camera_id, start_time),
    UNIQUE (s3_bucket, s3_key, start_time)
) PARTITION BY RANGE (start_time);

-- The unique (camera_id, start_time) index serves "camera × time range" listings.
CREATE INDEX recordings_camera_end_idx ON recordings (camera_id, end_time);

-- Creates the month partition holding `ts` if it does not exist. Concurrent uploaders may
-- race here: the advisory lock serialises them, and because taking an advisory lock does
-- not refresh the catalog cache, the loser may still not "see" the winner's table — so a
-- duplicate_table error is the expected, harmless outcome and is swallowed.
CREATE FUNCTION camvault_ensure_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := lo + interval '1 month';
    name text := format('recordings_y%sm%s', to_char(lo AT TIME ZONE 'UTC', 'YYYY'),
                                             to_char(lo AT TIME ZONE 'UTC', 'MM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('camvault_partitions'));
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF recordings FOR VALUES FROM (%L) TO (%L)',
                           name, lo, hi);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;  -- created by a concurrent transaction
        END;
    END IF;
    RETURN name;
END $$;

-- Partitions from `months_back` before to `months_ahead` after now.
CREATE FUNCTION camvault_ensure_partitions(months_back integer, months_ahead integer)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT camvault_ensure_partition(now() + make_interval(months => m))
    FROM generate_series(-months_back, months_ahead) AS m;
$$;

CREATE TABLE upload_errors (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    camera_id   text NOT NULL,
    segment_id  text NOT NULL,
    s3_key      text NOT NULL,
    attempts    integer NOT NULL,
    error_class text NOT NULL,
    message     text NOT NULL,
    node        text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX upload_errors_camera_time_idx ON upload_errors (camera_id, occurred_at DESC);
-- Errors journaled locally while PostgreSQL was down are flushed later: same id, once.
CREATE UNIQUE INDEX upload_errors_segment_attempt_idx ON upload_errors (segment_id, attempts);
