-- camvault catalog, version 5: access hardening.
--
-- * Names can never be read as ids: user and group names may not be all digits (the CLI
--   and the API look names up by name only, ids only through explicit id fields).
-- * SECURITY DEFINER helpers: only the roles that need them may call them, and their
--   search_path is pinned with pg_temp last, so a caller's temporary table named `users`
--   or `grants` cannot stand in for the real one.
-- * audit_log.actor says who acted: `user:<name>` (API), `os:<login>` (operator CLI),
--   `system` (pipeline, retention sync).
-- * The recorder's tables (0004) get the grants a separate pipeline login needs, and
--   row-level security like every other table.

-- Names -----------------------------------------------------------------------------------
-- An existing all-digit name stops the migration rather than being renamed behind the
-- operator's back: such a name may already have been confused with an id (a token or a
-- grant for the wrong user), which the operator must review.
DO $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(format('%s %L (id %s)', kind, name, id), ', ' ORDER BY kind, id)
      INTO bad
      FROM (SELECT 'user' AS kind, name, id FROM users WHERE name ~ '^[0-9]+$'
            UNION ALL
            SELECT 'group', name, id FROM groups WHERE name ~ '^[0-9]+$') AS n;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'camvault 0005: names that are all digits can be confused with ids: %; '
                        'review their tokens, grants and memberships, rename them (UPDATE users '
                        'SET name = ''new-name'' WHERE id = …; likewise groups) and migrate again',
                        bad
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

ALTER TABLE users ADD CONSTRAINT users_name_not_numeric CHECK (name !~ '^[0-9]+$');
ALTER TABLE groups ADD CONSTRAINT groups_name_not_numeric CHECK (name !~ '^[0-9]+$');

-- SECURITY DEFINER helpers ----------------------------------------------------------------
-- ALTER FUNCTION … SET replaces the `SET search_path FROM CURRENT` of 0002 (whose implicit
-- pg_temp came first). A later CREATE OR REPLACE drops the SET clause: repeat it there.
ALTER FUNCTION camvault_is_admin() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION camvault_my_grants() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION camvault_acl_visible_cameras() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION camvault_acl_cameras() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION camvault_acl_windows() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION camvault_acl_admin_cameras() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION camvault_authenticate(bytea) SET search_path = pg_catalog, public, pg_temp;

-- Redefined, not altered: with pg_catalog first an unqualified CREATE TABLE would target
-- pg_catalog, so the partition is created in public explicitly. Otherwise as in 0002.
CREATE OR REPLACE FUNCTION camvault_ensure_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    lo   timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := lo + interval '1 month';
    name text := format('recordings_y%sm%s', to_char(lo AT TIME ZONE 'UTC', 'YYYY'),
                                             to_char(lo AT TIME ZONE 'UTC', 'MM'));
BEGIN
    IF to_regclass(format('public.%I', name)) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('camvault_partitions'));
        -- the advisory lock does not refresh the catalog cache: a concurrent creator's
        -- table may still be invisible here, so duplicate_table is expected (see 0001)
        BEGIN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.recordings '
                           'FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
            PERFORM camvault_secure_recordings(format('public.%I', name)::regclass);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END $$;

REVOKE ALL ON FUNCTION camvault_is_admin() FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_my_grants() FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_acl_visible_cameras() FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_acl_cameras() FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_acl_windows() FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_acl_admin_cameras() FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_authenticate(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_ensure_partition(timestamptz) FROM PUBLIC;

-- The API's policies call the ACL helpers as camvault_api; camvault_my_grants is only
-- called by them (as the owner), so nobody else gets it. The service policies are
-- `USING (true)` and call nothing.
GRANT EXECUTE ON FUNCTION camvault_is_admin(), camvault_acl_visible_cameras(),
    camvault_acl_cameras(), camvault_acl_windows(), camvault_acl_admin_cameras(),
    camvault_authenticate(bytea)
    TO camvault_api;
GRANT EXECUTE ON FUNCTION camvault_ensure_partition(timestamptz) TO camvault_service;

-- Audit actor -----------------------------------------------------------------------------
ALTER TABLE audit_log ADD COLUMN actor text NOT NULL DEFAULT '';
UPDATE audit_log
   SET actor = CASE WHEN user_id IS NOT NULL THEN 'user:' || user_name ELSE 'system' END;

-- Recorder tables -------------------------------------------------------------------------
ALTER TABLE recorder_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE recorder_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY recorder_runs_service ON recorder_runs FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
ALTER TABLE camera_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE camera_status FORCE ROW LEVEL SECURITY;
CREATE POLICY camera_status_service ON camera_status FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
-- The API has no privilege on these yet; should a feature grant it SELECT, it sees the
-- cameras the cameras policy lets it see, nothing more.
CREATE POLICY recorder_runs_api ON recorder_runs FOR SELECT TO camvault_api
    USING (camera_id IN (SELECT id FROM cameras));
CREATE POLICY camera_status_api ON camera_status FOR SELECT TO camvault_api
    USING (camera_id IN (SELECT id FROM cameras));

GRANT SELECT, INSERT, UPDATE, DELETE ON recorder_runs, camera_status TO camvault_service;
GRANT SELECT ON recording_gaps TO camvault_service;
