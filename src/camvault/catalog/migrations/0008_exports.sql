-- camvault catalog, version 8: windowed grants mean their window, and clip exports.
--
-- 1. A windowed grant now covers every recording that OVERLAPS its window (strictly:
--    window_start < end_time AND start_time < window_end), not only those inside it. What
--    the caller may see of such a recording is clipped: camvault_acl_range() returns the
--    union of the caller's covering windows intersected with a time range (the whole
--    range for an unwindowed grant or an admin). Listings, metadata, playback and export
--    use it; playback of a clipped recording goes through the API's media route, never a
--    presigned URL to the whole object. camvault.acl mirrors this rule in Python.
-- 2. exports: clip export jobs, claimed by workers with FOR UPDATE SKIP LOCKED.

CREATE OR REPLACE FUNCTION camvault_secure_recordings(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS recordings_service ON %s', tbl);
    EXECUTE format('CREATE POLICY recordings_service ON %s FOR ALL TO camvault_service '
                   'USING (true) WITH CHECK (true)', tbl);
    EXECUTE format('DROP POLICY IF EXISTS recordings_api ON %s', tbl);
    EXECUTE format($p$
        CREATE POLICY recordings_api ON %s FOR SELECT TO camvault_api USING (
            camera_id = ANY ((SELECT public.camvault_acl_cameras())::text[])
            OR (SELECT public.camvault_is_admin())
            OR EXISTS (SELECT 1 FROM unnest((SELECT public.camvault_acl_windows())) AS w
                        WHERE w.win_camera = camera_id
                          AND w.win_start < end_time AND start_time < w.win_end))
    $p$, tbl);
    EXECUTE format('GRANT SELECT ON %s TO camvault_api', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO camvault_service', tbl);
END $$;
REVOKE ALL ON FUNCTION camvault_secure_recordings(regclass) FROM PUBLIC;

SELECT camvault_secure_recordings('recordings');
SELECT camvault_secure_recordings(inhrelid::regclass)
  FROM pg_inherits WHERE inhparent = 'recordings'::regclass;

-- The part of [p_start, p_end] the acting user may see with at least p_min ('view',
-- 'export', 'admin'): the union of their covering grants' windows clipped to the range.
-- Empty for no acting user or a disabled one; the whole range for an admin.
CREATE FUNCTION camvault_acl_range(p_camera text, p_start timestamptz, p_end timestamptz,
                                   p_min text DEFAULT 'view')
RETURNS tstzmultirange
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    whole tstzrange := tstzrange(p_start, p_end, '[]');
    ranks constant text[] := ARRAY['view', 'export', 'admin'];
    need  integer := array_position(ranks, p_min);
BEGIN
    IF need IS NULL THEN
        RAISE EXCEPTION 'unknown permission %', p_min USING ERRCODE = '22023';
    END IF;
    IF public.camvault_is_admin() THEN
        RETURN tstzmultirange(whole);
    END IF;
    RETURN (SELECT coalesce(range_agg(x.r), '{}'::tstzmultirange)
              FROM (SELECT CASE WHEN g.window_start IS NULL THEN whole
                                ELSE whole * tstzrange(g.window_start, g.window_end, '[]')
                           END AS r
                      FROM public.camvault_my_grants() g
                     WHERE g.camera_id = p_camera
                       AND array_position(ranks, g.permission) >= need
                       AND (g.window_start IS NULL
                            OR (g.window_start < p_end AND p_start < g.window_end))) x
             WHERE NOT isempty(x.r));
END $$;
REVOKE ALL ON FUNCTION camvault_acl_range(text, timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camvault_acl_range(text, timestamptz, timestamptz, text)
    TO camvault_api, camvault_service;

CREATE TABLE exports (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_by   bigint,  -- users.id; NULL = the operator CLI. No FK: the trail outlives it
    requester_name text NOT NULL DEFAULT '',
    camera_id      text NOT NULL REFERENCES cameras (id),
    range_start    timestamptz NOT NULL,
    range_end      timestamptz NOT NULL,
    -- the earliest instant the requester may export contiguously before range_start: a
    -- keyframe before range_start is used only if it is not earlier than this
    allowed_start  timestamptz NOT NULL,
    recording_ids  bigint[] NOT NULL,
    state          text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress       real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    cut            text CHECK (cut IN ('keyframe_at_or_before', 'keyframe_at_or_after')),
    actual_start   timestamptz,
    actual_end     timestamptz,
    gaps           jsonb NOT NULL DEFAULT '[]',
    s3_bucket      text,
    s3_key         text,
    size_bytes     bigint,
    sha256         text,
    sse            text,
    error          text,
    attempts       integer NOT NULL DEFAULT 0,
    worker         text,
    heartbeat_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    CHECK (range_end > range_start),
    CHECK (allowed_start <= range_start)
);
CREATE INDEX exports_pending_idx ON exports (id) WHERE state IN ('queued', 'running');
CREATE INDEX exports_requester_idx ON exports (requested_by, id DESC);

ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE exports FORCE ROW LEVEL SECURITY;
CREATE POLICY exports_service ON exports FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
-- requester and admins read; a user creates jobs only in their own name; workers (service
-- role) do every update
CREATE POLICY exports_api_select ON exports FOR SELECT TO camvault_api
    USING (requested_by = (SELECT camvault_current_user_id()) OR (SELECT camvault_is_admin()));
CREATE POLICY exports_api_insert ON exports FOR INSERT TO camvault_api
    WITH CHECK (requested_by = (SELECT camvault_current_user_id()) AND state = 'queued');
GRANT SELECT, INSERT ON exports TO camvault_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON exports TO camvault_service;
