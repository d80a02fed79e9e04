-- camvault catalog, version 2: principals, grants, API tokens, audit log, and row-level
-- security on cameras, recordings (every partition) and the audit log.
--
-- Roles (cluster-global, created idempotently):
--   * the owner: whoever runs `camvault db migrate` owns every table and function here. It
--     is made a member of camvault_service so that, under FORCE ROW LEVEL SECURITY, the
--     spine (ingest/upload/commit, operator CLI) keeps working when it runs as the owner.
--   * camvault_service: NOLOGIN, NOBYPASSRLS; sees and writes everything through explicit
--     `USING (true)` policies. A separate login for the upload pipeline joins this role.
--   * camvault_api: NOLOGIN, NOSUPERUSER, NOBYPASSRLS, owns nothing. The API switches to it
--     with SET LOCAL ROLE in every transaction (or logs in as a member of it) and sets the
--     acting user with set_config('camvault.user_id', id, true).
--
-- Coverage rule (the same one `camvault.acl` implements in Python, independently):
-- a grant covers a recording when it is not revoked, not expired (expires_at > now()), is
-- held by the user or by a group the user belongs to, is on the recording's camera, and —
-- when it has a footage window — the recording lies entirely inside [window_start,
-- window_end]. A disabled user sees nothing; an enabled admin user sees everything.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['camvault_service', 'camvault_api'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB '
                               'NOCREATEROLE NOREPLICATION', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- a concurrent migration of another database created it first
            END;
        END IF;
    END LOOP;
    -- the owner must pass the service policies (FORCE applies RLS to the owner too), and be
    -- able to SET ROLE camvault_api for the API's transactions
    IF NOT pg_has_role(current_user, 'camvault_service', 'MEMBER') THEN
        EXECUTE format('GRANT camvault_service TO %I', current_user);
    END IF;
    IF NOT pg_has_role(current_user, 'camvault_api', 'MEMBER') THEN
        EXECUTE format('GRANT camvault_api TO %I', current_user);
    END IF;
END $$;

-- Listings bound their index scan with start_time > start - 6 hours (see access.sql
-- recordings_page), which is only correct if no recording is longer than that. Segments
-- are at most an hour (segment_seconds <= 3600); this makes the assumption a rule.
ALTER TABLE recordings ADD CONSTRAINT recordings_max_length
    CHECK (end_time <= start_time + interval '6 hours');

CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    is_admin   boolean NOT NULL DEFAULT false,
    disabled   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE groups (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE group_members (
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id, group_id);

CREATE TABLE grants (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint REFERENCES users (id) ON DELETE CASCADE,
    group_id     bigint REFERENCES groups (id) ON DELETE CASCADE,
    camera_id    text NOT NULL REFERENCES cameras (id) ON DELETE CASCADE,
    permission   text NOT NULL DEFAULT 'view' CHECK (permission IN ('view', 'export', 'admin')),
    window_start timestamptz,
    window_end   timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(user_id, group_id) = 1),
    CHECK ((window_start IS NULL) = (window_end IS NULL)),
    CHECK (window_end > window_start)
);
-- the policy helpers look grants up by principal; revoked grants are never consulted
CREATE INDEX grants_user_idx ON grants (user_id, camera_id) WHERE revoked_at IS NULL;
CREATE INDEX grants_group_idx ON grants (group_id, camera_id) WHERE revoked_at IS NULL;
CREATE INDEX grants_camera_idx ON grants (camera_id);

-- Only the SHA-256 of a token is stored; tokens are 256-bit random, so a fast hash is
-- enough (nothing to brute-force), and lookup is an index probe.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    hint         text NOT NULL,  -- first characters, to tell tokens apart in listings
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    user_id         bigint,  -- no FK: the trail outlives the user
    user_name       text NOT NULL DEFAULT '',
    action          text NOT NULL,
    camera_id       text,
    recording_id    bigint,
    recording_start timestamptz,
    s3_key          text,
    client_addr     text,
    user_agent      text,
    detail          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, at DESC);

-- Policy helpers ------------------------------------------------------------------------
-- SECURITY DEFINER so they can read the principal tables whatever the caller may read;
-- policies call them wrapped in (SELECT ...) so each runs once per query (an InitPlan),
-- not once per row.

CREATE FUNCTION camvault_current_user_id() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('camvault.user_id', true), '')::bigint
$$;

CREATE FUNCTION camvault_is_admin() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    RETURN coalesce((SELECT is_admin AND NOT disabled FROM users
                      WHERE id = camvault_current_user_id()), false);
END $$;

-- Active grants held by the acting user directly or through a group. Two index probes
-- (grants_user_idx, group_members_user_idx + grants_group_idx) — an OR would scan grants.
-- The helpers are PL/pgSQL: their statements' plans are cached per session, where a SQL
-- function that cannot be inlined would be planned again on every query.
CREATE FUNCTION camvault_my_grants()
RETURNS TABLE (camera_id text, permission text, window_start timestamptz,
               window_end timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    me bigint := camvault_current_user_id();
BEGIN
    IF me IS NULL OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = me AND NOT u.disabled) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT g.camera_id, g.permission, g.window_start, g.window_end
          FROM grants g
         WHERE g.user_id = me
           AND g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
        UNION ALL
        SELECT g.camera_id, g.permission, g.window_start, g.window_end
          FROM group_members m JOIN grants g ON g.group_id = m.group_id
         WHERE m.user_id = me
           AND g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now());
END $$;

-- Cameras the acting user may see at all (any active grant, windowed or not).
CREATE FUNCTION camvault_acl_visible_cameras() RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT g.camera_id), '{}') FROM camvault_my_grants() g);
END $$;

-- Cameras whose whole footage the acting user may see (an active grant without window).
CREATE FUNCTION camvault_acl_cameras() RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT g.camera_id), '{}') FROM camvault_my_grants() g
             WHERE g.window_start IS NULL);
END $$;

CREATE TYPE camvault_acl_window AS (win_camera text, win_start timestamptz, win_end timestamptz);

-- Footage windows of the acting user's windowed grants.
CREATE FUNCTION camvault_acl_windows() RETURNS camvault_acl_window[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(ROW(g.camera_id, g.window_start, g.window_end)
                                      ::camvault_acl_window), '{}')
              FROM camvault_my_grants() g
             WHERE g.window_start IS NOT NULL);
END $$;

-- Bearer token → user, for the API (which cannot read token hashes itself).
CREATE FUNCTION camvault_authenticate(p_hash bytea)
RETURNS TABLE (user_id bigint, user_name text, is_admin boolean, token_id bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    RETURN QUERY
        SELECT u.id, u.name, u.is_admin, t.id
          FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = p_hash
           AND t.revoked_at IS NULL
           AND (t.expires_at IS NULL OR t.expires_at > now())
           AND NOT u.disabled;
    -- throttled, so an active client does not write on every request
    UPDATE api_tokens t SET last_used_at = now()
     WHERE t.token_hash = p_hash
       AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute');
END $$;

-- Row-level security ----------------------------------------------------------------------

-- Policies of one recordings table (the parent or a partition): policies are not inherited
-- by partitions, and a partition queried directly uses only its own.
CREATE FUNCTION camvault_secure_recordings(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('DROP POLICY IF EXISTS recordings_service ON %s', tbl);
    EXECUTE format('CREATE POLICY recordings_service ON %s FOR ALL TO camvault_service '
                   'USING (true) WITH CHECK (true)', tbl);
    EXECUTE format('DROP POLICY IF EXISTS recordings_api ON %s', tbl);
    EXECUTE format($p$
        CREATE POLICY recordings_api ON %s FOR SELECT TO camvault_api USING (
            -- cheapest first: the common case needs one InitPlan (they run lazily)
            camera_id = ANY ((SELECT camvault_acl_cameras())::text[])
            OR (SELECT camvault_is_admin())
            OR EXISTS (SELECT 1 FROM unnest((SELECT camvault_acl_windows())) AS w
                        WHERE w.win_camera = camera_id
                          AND w.win_start <= start_time AND end_time <= w.win_end))
    $p$, tbl);
    EXECUTE format('GRANT SELECT ON %s TO camvault_api', tbl);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO camvault_service', tbl);
END $$;

SELECT camvault_secure_recordings('recordings');
SELECT camvault_secure_recordings(inhrelid::regclass)
  FROM pg_inherits WHERE inhparent = 'recordings'::regclass;

-- Partitions created from now on get the same policies. SECURITY DEFINER: partitions are
-- created (and owned) by the schema owner whoever triggers them.
CREATE OR REPLACE FUNCTION camvault_ensure_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    lo   timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := lo + interval '1 month';
    name text := format('recordings_y%sm%s', to_char(lo AT TIME ZONE 'UTC', 'YYYY'),
                                             to_char(lo AT TIME ZONE 'UTC', 'MM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('camvault_partitions'));
        -- the advisory lock does not refresh the catalog cache: a concurrent creator's
        -- table may still be invisible here, so duplicate_table is expected (see 0001)
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF recordings FOR VALUES FROM (%L) TO (%L)',
                           name, lo, hi);
            PERFORM camvault_secure_recordings(name::regclass);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END $$;
REVOKE EXECUTE ON FUNCTION camvault_ensure_partition(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION camvault_ensure_partitions(integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION camvault_secure_recordings(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camvault_ensure_partition(timestamptz) TO camvault_service;
GRANT EXECUTE ON FUNCTION camvault_ensure_partitions(integer, integer) TO camvault_service;

ALTER TABLE cameras ENABLE ROW LEVEL SECURITY;
ALTER TABLE cameras FORCE ROW LEVEL SECURITY;
CREATE POLICY cameras_service ON cameras FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
CREATE POLICY cameras_api ON cameras FOR SELECT TO camvault_api USING (
    (SELECT camvault_is_admin()) OR id = ANY ((SELECT camvault_acl_visible_cameras())::text[]));

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_service ON audit_log FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
-- a user can only write entries in their own name; only admins read the trail
CREATE POLICY audit_api_insert ON audit_log FOR INSERT TO camvault_api
    WITH CHECK (user_id = (SELECT camvault_current_user_id()));
CREATE POLICY audit_api_select ON audit_log FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin()));

-- Principal tables: admins manage them through the API; a user sees their own rows.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_service ON users FOR ALL TO camvault_service USING (true) WITH CHECK (true);
CREATE POLICY users_api_select ON users FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin()) OR id = (SELECT camvault_current_user_id()));
CREATE POLICY users_api_write ON users FOR ALL TO camvault_api
    USING ((SELECT camvault_is_admin())) WITH CHECK ((SELECT camvault_is_admin()));

ALTER TABLE groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE groups FORCE ROW LEVEL SECURITY;
CREATE POLICY groups_service ON groups FOR ALL TO camvault_service USING (true) WITH CHECK (true);
CREATE POLICY groups_api_select ON groups FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin())
           OR id IN (SELECT group_id FROM group_members
                      WHERE user_id = (SELECT camvault_current_user_id())));
CREATE POLICY groups_api_write ON groups FOR ALL TO camvault_api
    USING ((SELECT camvault_is_admin())) WITH CHECK ((SELECT camvault_is_admin()));

ALTER TABLE group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE group_members FORCE ROW LEVEL SECURITY;
CREATE POLICY members_service ON group_members FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
CREATE POLICY members_api_select ON group_members FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin()) OR user_id = (SELECT camvault_current_user_id()));
CREATE POLICY members_api_write ON group_members FOR ALL TO camvault_api
    USING ((SELECT camvault_is_admin())) WITH CHECK ((SELECT camvault_is_admin()));

-- A user sees the grants that apply to them, and every grant on a camera they hold an
-- active `admin` grant on (so the ACL shown with a recording is complete for them).
CREATE FUNCTION camvault_acl_admin_cameras() RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    RETURN (SELECT coalesce(array_agg(DISTINCT g.camera_id), '{}') FROM camvault_my_grants() g
             WHERE g.window_start IS NULL AND g.permission = 'admin');
END $$;

ALTER TABLE grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE grants FORCE ROW LEVEL SECURITY;
CREATE POLICY grants_service ON grants FOR ALL TO camvault_service USING (true) WITH CHECK (true);
CREATE POLICY grants_api_select ON grants FOR SELECT TO camvault_api USING (
    (SELECT camvault_is_admin())
    OR user_id = (SELECT camvault_current_user_id())
    OR group_id IN (SELECT group_id FROM group_members
                     WHERE user_id = (SELECT camvault_current_user_id()))
    OR camera_id = ANY ((SELECT camvault_acl_admin_cameras())::text[]));
CREATE POLICY grants_api_write ON grants FOR ALL TO camvault_api
    USING ((SELECT camvault_is_admin())) WITH CHECK ((SELECT camvault_is_admin()));

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tokens_service ON api_tokens FOR ALL TO camvault_service
    USING (true) WITH CHECK (true);
CREATE POLICY tokens_api_select ON api_tokens FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin()) OR user_id = (SELECT camvault_current_user_id()));
CREATE POLICY tokens_api_write ON api_tokens FOR ALL TO camvault_api
    USING ((SELECT camvault_is_admin())) WITH CHECK ((SELECT camvault_is_admin()));

-- Table privileges ------------------------------------------------------------------------
GRANT SELECT ON cameras TO camvault_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, groups, group_members, grants TO camvault_api;
-- the API never reads token hashes: it authenticates through camvault_authenticate()
GRANT SELECT (id, user_id, hint, name, created_at, expires_at, revoked_at, last_used_at),
      INSERT (user_id, token_hash, hint, name, expires_at),
      UPDATE (revoked_at)
   ON api_tokens TO camvault_api;
GRANT SELECT, INSERT ON audit_log TO camvault_api;

GRANT SELECT, INSERT, UPDATE, DELETE
   ON cameras, upload_errors, users, groups, group_members, grants, api_tokens, audit_log
   TO camvault_service;
