-- camvault catalog, version 14: two rules the named queries repeated, written once.
--
-- Both are SQL-standard bodies (RETURN …): LANGUAGE sql, SECURITY INVOKER, no SET clause,
-- one expression and no sub-select, so the planner inlines them into the calling query —
-- the plans are the ones the hand-written CASE had (checked with EXPLAIN VERBOSE: the
-- CASE appears, the function name does not). Names in the body are bound when this runs,
-- so a caller's search_path cannot redirect them.

-- What the acting user may see of one recording [p_start, p_end) of p_camera: NULL = all
-- of it (a whole-camera grant, an admin, or no acting user: a service connection, which
-- row-level security does not restrict either); else the parts inside their windowed
-- grants (camvault_acl_range; empty = nothing). The caller passes
-- (SELECT camvault_acl_cameras()) and (SELECT camvault_is_admin()): as arguments they stay
-- InitPlans, evaluated once per query — a sub-select in this body would stop the inlining
-- and run them once per row.
CREATE FUNCTION camvault_visible_range(p_camera text, p_start timestamptz, p_end timestamptz,
                                       p_whole_cameras text[], p_admin boolean)
RETURNS tstzmultirange
LANGUAGE sql STABLE
RETURN CASE WHEN p_camera = ANY (p_whole_cameras)
                 OR p_admin
                 OR coalesce(current_setting('camvault.user_id', true), '') = ''
            THEN NULL
            ELSE camvault_acl_range(p_camera, p_start, p_end, 'view')
       END;

-- A recording's storage state for the timeline and the playlist: its storage class while
-- it is in no archive class; else restored (a readable copy that has not lapsed),
-- restoring (a restore requested or under way) or archived. p_restore_status /
-- p_restored_until come from the `restores` row (NULL: none).
CREATE FUNCTION camvault_storage_state(p_storage_class text, p_restore_status text,
                                       p_restored_until timestamptz)
RETURNS text
LANGUAGE sql STABLE
RETURN CASE
           WHEN upper(p_storage_class) NOT IN ('GLACIER', 'DEEP_ARCHIVE') THEN p_storage_class
           WHEN p_restore_status = 'restored'
                AND (p_restored_until IS NULL OR p_restored_until > now()) THEN 'restored'
           WHEN p_restore_status IN ('requested', 'in_progress') THEN 'restoring'
           ELSE 'archived'
       END;
