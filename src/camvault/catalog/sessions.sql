-- Named queries of web sign-in (camvault.sessions). The API role reaches the session
-- tables only through the SECURITY DEFINER functions of migration 0007; the operator CLI
-- (owner connection) sets passwords directly.

-- name: signin_lookup
SELECT user_id, user_name, is_admin, password_hash, user_failures, addr_failures
  FROM camvault_signin_lookup(%(name)s, %(addr)s, %(since)s);

-- name: signin_failed
SELECT camvault_signin_failed(%(name)s, %(addr)s, %(agent)s, %(reason)s, %(counted)s);

-- name: session_start
SELECT camvault_session_start(%(user_id)s, %(hash)s, %(expires_at)s, %(addr)s, %(agent)s)
    AS session_id;

-- name: session_authenticate
SELECT user_id, user_name, is_admin, session_id, expires_at
  FROM camvault_session_authenticate(%(hash)s);

-- name: session_end
SELECT camvault_session_end(%(hash)s, %(addr)s, %(agent)s) AS user_id;

-- name: set_password
INSERT INTO user_passwords (user_id, hash) VALUES (%(user_id)s, %(hash)s)
ON CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, updated_at = now();

-- name: end_user_sessions
UPDATE web_sessions SET ended_at = now(), end_reason = %(reason)s
 WHERE user_id = %(user_id)s AND ended_at IS NULL;

-- name: has_password
SELECT EXISTS (SELECT 1 FROM user_passwords WHERE user_id = %(user_id)s) AS has;
