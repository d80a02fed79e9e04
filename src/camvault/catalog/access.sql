-- Named queries of access control and the API, loaded by camvault.catalog.queries.
-- Run either as the owner/service role (operator CLI) or as camvault_api with the acting
-- user set (API): the same text, with row-level security deciding what each one sees.

-- name: add_user
INSERT INTO users (name, is_admin) VALUES (%(name)s, %(is_admin)s)
RETURNING id, name, is_admin, disabled, created_at;

-- name: get_user
SELECT id, name, is_admin, disabled, created_at FROM users WHERE id = %(id)s;

-- name: get_user_by_name
SELECT id, name, is_admin, disabled, created_at FROM users WHERE name = %(name)s;

-- name: list_users
SELECT id, name, is_admin, disabled, created_at FROM users ORDER BY name;

-- name: update_user
UPDATE users
   SET is_admin = coalesce(%(is_admin)s, is_admin),
       disabled = coalesce(%(disabled)s, disabled)
 WHERE id = %(id)s
RETURNING id, name, is_admin, disabled, created_at;

-- name: delete_user
DELETE FROM users WHERE id = %(id)s RETURNING id;

-- name: user_group_ids
SELECT group_id FROM group_members WHERE user_id = %(user_id)s ORDER BY group_id;

-- name: add_group
INSERT INTO groups (name) VALUES (%(name)s) RETURNING id, name, created_at;

-- name: get_group_by_name
SELECT id, name, created_at FROM groups WHERE name = %(name)s;

-- name: get_group
SELECT id, name, created_at FROM groups WHERE id = %(id)s;

-- name: list_groups
SELECT g.id, g.name, g.created_at,
       coalesce(array_agg(u.name ORDER BY u.name) FILTER (WHERE u.id IS NOT NULL), '{}')
           AS members
  FROM groups g
  LEFT JOIN group_members m ON m.group_id = g.id
  LEFT JOIN users u ON u.id = m.user_id
 GROUP BY g.id
 ORDER BY g.name;

-- name: delete_group
DELETE FROM groups WHERE id = %(id)s RETURNING id;

-- name: add_member
INSERT INTO group_members (group_id, user_id) VALUES (%(group_id)s, %(user_id)s)
ON CONFLICT DO NOTHING;

-- name: remove_member
DELETE FROM group_members WHERE group_id = %(group_id)s AND user_id = %(user_id)s
RETURNING group_id;

-- name: add_grant
INSERT INTO grants (user_id, group_id, camera_id, permission, window_start, window_end,
                    expires_at, created_by)
VALUES (%(user_id)s, %(group_id)s, %(camera_id)s, %(permission)s, %(window_start)s,
        %(window_end)s, %(expires_at)s, %(created_by)s)
RETURNING id;

-- name: get_grant
SELECT g.*, u.name AS user_name, gr.name AS group_name
  FROM grants g
  LEFT JOIN users u ON u.id = g.user_id
  LEFT JOIN groups gr ON gr.id = g.group_id
 WHERE g.id = %(id)s;

-- name: list_grants
SELECT g.*, u.name AS user_name, gr.name AS group_name
  FROM grants g
  LEFT JOIN users u ON u.id = g.user_id
  LEFT JOIN groups gr ON gr.id = g.group_id
 WHERE (%(camera_id)s::text IS NULL OR g.camera_id = %(camera_id)s)
   AND (%(user_id)s::bigint IS NULL OR g.user_id = %(user_id)s)
   AND (%(group_id)s::bigint IS NULL OR g.group_id = %(group_id)s)
   AND (%(include_revoked)s OR g.revoked_at IS NULL)
 ORDER BY g.id;

-- name: revoke_grant
UPDATE grants SET revoked_at = now() WHERE id = %(id)s AND revoked_at IS NULL RETURNING id;

-- name: recording_acl
-- The grants covering one recording (same rule as the RLS policy and camvault.acl: a
-- windowed grant covers the recordings its window overlaps);
-- row-level security on grants limits it to those the caller may see.
SELECT g.*, u.name AS user_name, gr.name AS group_name
  FROM grants g
  LEFT JOIN users u ON u.id = g.user_id
  LEFT JOIN groups gr ON gr.id = g.group_id
 WHERE g.camera_id = %(camera_id)s
   AND g.revoked_at IS NULL
   AND (g.expires_at IS NULL OR g.expires_at > now())
   AND (g.window_start IS NULL
        OR (g.window_start < %(end_time)s AND %(start_time)s < g.window_end))
 ORDER BY g.id;

-- name: create_token
INSERT INTO api_tokens (user_id, token_hash, hint, name, expires_at)
VALUES (%(user_id)s, %(token_hash)s, %(hint)s, %(name)s, %(expires_at)s)
RETURNING id, user_id, hint, name, created_at, expires_at, revoked_at, last_used_at;

-- name: list_tokens
SELECT t.id, t.user_id, u.name AS user_name, t.hint, t.name, t.created_at, t.expires_at,
       t.revoked_at, t.last_used_at
  FROM api_tokens t JOIN users u ON u.id = t.user_id
 WHERE (%(user_id)s::bigint IS NULL OR t.user_id = %(user_id)s)
 ORDER BY t.id;

-- name: revoke_token
UPDATE api_tokens SET revoked_at = now()
 WHERE id = %(id)s AND revoked_at IS NULL
RETURNING id;

-- name: authenticate
SELECT user_id, user_name, is_admin, token_id FROM camvault_authenticate(%(token_hash)s);

-- name: insert_audit
INSERT INTO audit_log (user_id, user_name, actor, action, camera_id, recording_id,
                       recording_start, s3_key, client_addr, user_agent, detail)
VALUES (%(user_id)s, %(user_name)s, %(actor)s, %(action)s, %(camera_id)s, %(recording_id)s,
        %(recording_start)s, %(s3_key)s, %(client_addr)s, %(user_agent)s, %(detail)s);
-- no RETURNING: that would need the row to pass the SELECT policy (admins only)

-- name: list_audit
-- Newest first, keyset on id (monotonic with insertion).
SELECT id, at, user_id, user_name, actor, action, camera_id, recording_id, recording_start,
       s3_key, client_addr, user_agent, detail
  FROM audit_log
 WHERE (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
   AND (%(user_id)s::bigint IS NULL OR user_id = %(user_id)s)
   AND (%(camera_id)s::text IS NULL OR camera_id = %(camera_id)s)
   AND (%(action)s::text IS NULL OR action = %(action)s)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: visible_cameras
SELECT id, name, segment_seconds, enabled, created_at FROM cameras ORDER BY id;

-- name: visible_camera
SELECT id, name, segment_seconds, enabled, created_at FROM cameras WHERE id = %(id)s;

-- name: recordings_page
-- Overlap semantics (a segment straddling `start` is included), keyset on (start_time, id).
-- visible_range: what a windowed grant lets the caller see of the row (NULL = all of it;
-- migration 0014, inlined by the planner).
-- No recording is longer than 6 hours (CHECK recordings_max_length), so the scan of the
-- (camera_id, start_time) index is bounded on both sides. No OR-ed optional keyset
-- condition, so the plan stays an index range scan when it is prepared.
SELECT *,
       camvault_visible_range(camera_id, start_time, end_time,
                              (SELECT camvault_acl_cameras()), (SELECT camvault_is_admin()))
           AS visible_range
  FROM recordings
 WHERE camera_id = %(camera_id)s
   AND end_time > %(start)s
   AND start_time < %(end)s
   AND start_time > %(start)s::timestamptz - interval '6 hours'
   AND deleted_at IS NULL  -- tombstones (expired/vanished objects) stay for the audit trail
 ORDER BY start_time, id
 LIMIT %(limit)s;

-- name: recordings_page_after
SELECT *,
       camvault_visible_range(camera_id, start_time, end_time,
                              (SELECT camvault_acl_cameras()), (SELECT camvault_is_admin()))
           AS visible_range
  FROM recordings
 WHERE camera_id = %(camera_id)s
   AND end_time > %(start)s
   AND start_time < %(end)s
   AND start_time > %(start)s::timestamptz - interval '6 hours'
   AND (start_time, id) > (%(after_start)s, %(after_id)s)
   AND deleted_at IS NULL
 ORDER BY start_time, id
 LIMIT %(limit)s;

-- name: visible_recording
-- A tombstone's footage is gone: it answers 404 like any recording the caller cannot see.
SELECT *,
       camvault_visible_range(camera_id, start_time, end_time,
                              (SELECT camvault_acl_cameras()), (SELECT camvault_is_admin()))
           AS visible_range
  FROM recordings WHERE id = %(id)s AND deleted_at IS NULL;

-- name: ping
SELECT 1 AS ok;
