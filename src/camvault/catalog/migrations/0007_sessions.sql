-- camvault catalog, version 7: web sign-in — passwords, sessions, failed sign-in throttling.
--
-- Every row lives in PostgreSQL so any number of stateless API replicas share them. The API
-- role never reads these tables directly: it calls the SECURITY DEFINER functions below,
-- which hand out exactly what a sign-in needs (one user's password hash by name, a
-- session's owner by the SHA-256 of its secret) and write the audit trail themselves
-- (a failed sign-in has no acting user, so the audit_log insert policy would refuse it).

CREATE TABLE user_passwords (
    user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash       text NOT NULL CHECK (hash LIKE '$argon2id$%'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of the 256-bit random cookie secret is stored (like api_tokens).
CREATE TABLE web_sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text CHECK (end_reason IN ('signed_out', 'user_disabled', 'password_changed')),
    client_addr text,
    user_agent  text,
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id) WHERE ended_at IS NULL;

-- One row per failed sign-in; the throttle counts recent rows per name and per address.
CREATE TABLE signin_failures (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_name   text NOT NULL,
    client_addr text NOT NULL DEFAULT ''
);
CREATE INDEX signin_failures_user_idx ON signin_failures (user_name, at);
CREATE INDEX signin_failures_addr_idx ON signin_failures (client_addr, at);
CREATE INDEX signin_failures_at_idx ON signin_failures (at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['user_passwords', 'web_sessions', 'signin_failures'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL TO camvault_service '
                       'USING (true) WITH CHECK (true)', t || '_service', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO camvault_service', t);
    END LOOP;
END $$;

-- Disabling a user ends their sessions at once (re-enabling does not revive them).
CREATE FUNCTION camvault_end_sessions_of_disabled() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    UPDATE web_sessions SET ended_at = now(), end_reason = 'user_disabled'
     WHERE user_id = NEW.id AND ended_at IS NULL;
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION camvault_end_sessions_of_disabled() FROM PUBLIC;
CREATE TRIGGER users_disabled_ends_sessions
    AFTER UPDATE OF disabled ON users
    FOR EACH ROW WHEN (NEW.disabled AND NOT OLD.disabled)
    EXECUTE FUNCTION camvault_end_sessions_of_disabled();

-- Sign-in step 1: recent failures for this name and this address, and the user's hash
-- (NULL when there is no such enabled user with a password: the caller still runs a
-- dummy verification so the answer takes as long).
CREATE FUNCTION camvault_signin_lookup(p_name text, p_addr text, p_since timestamptz)
RETURNS TABLE (user_id bigint, user_name text, is_admin boolean, password_hash text,
               user_failures bigint, addr_failures bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
        SELECT u.id, u.name, u.is_admin, p.hash,
               (SELECT count(*) FROM signin_failures f
                 WHERE f.user_name = p_name AND f.at > p_since),
               (SELECT count(*) FROM signin_failures f
                 WHERE f.client_addr = coalesce(p_addr, '') AND f.at > p_since)
          FROM (SELECT 1) AS one
          LEFT JOIN users u ON u.name = p_name AND NOT u.disabled
          LEFT JOIN user_passwords p ON p.user_id = u.id;
END $$;

-- A failed sign-in: counted for the throttle (unless it was refused by the throttle
-- itself, so a lock-out ends after the window) and audited. Old rows are pruned here.
CREATE FUNCTION camvault_signin_failed(p_name text, p_addr text, p_agent text, p_reason text,
                                       p_counted boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF p_counted THEN
        INSERT INTO signin_failures (user_name, client_addr)
        VALUES (left(p_name, 128), coalesce(p_addr, ''));
    END IF;
    DELETE FROM signin_failures WHERE at < now() - interval '1 day';
    INSERT INTO audit_log (user_id, user_name, action, client_addr, user_agent, detail)
    VALUES ((SELECT id FROM users WHERE name = p_name), left(p_name, 128), 'signin.failed',
            p_addr, left(p_agent, 512), jsonb_build_object('reason', p_reason));
END $$;

-- Sign-in step 2 (password verified by the API): the session row and its audit entry.
CREATE FUNCTION camvault_session_start(p_user_id bigint, p_hash bytea, p_expires timestamptz,
                                       p_addr text, p_agent text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    sid bigint;
    uname text;
BEGIN
    SELECT name INTO uname FROM users WHERE id = p_user_id AND NOT disabled;
    IF uname IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO web_sessions (user_id, secret_hash, expires_at, client_addr, user_agent)
    VALUES (p_user_id, p_hash, p_expires, p_addr, left(p_agent, 512))
    RETURNING id INTO sid;
    INSERT INTO audit_log (user_id, user_name, action, client_addr, user_agent, detail)
    VALUES (p_user_id, uname, 'signin', p_addr, left(p_agent, 512),
            jsonb_build_object('session_id', sid, 'expires_at', p_expires));
    RETURN sid;
END $$;

-- Cookie → user, on every cookie-authenticated request.
CREATE FUNCTION camvault_session_authenticate(p_hash bytea)
RETURNS TABLE (user_id bigint, user_name text, is_admin boolean, session_id bigint,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
        SELECT u.id, u.name, u.is_admin, s.id, s.expires_at
          FROM web_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.secret_hash = p_hash AND s.ended_at IS NULL AND s.expires_at > now()
           AND NOT u.disabled;
END $$;

-- Sign-out: ends the session (idempotent) and audits it; returns the user id, if any.
CREATE FUNCTION camvault_session_end(p_hash bytea, p_addr text, p_agent text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    sid bigint;
    uid bigint;
BEGIN
    UPDATE web_sessions SET ended_at = now(), end_reason = 'signed_out'
     WHERE secret_hash = p_hash AND ended_at IS NULL
    RETURNING id, user_id INTO sid, uid;
    IF sid IS NOT NULL THEN
        INSERT INTO audit_log (user_id, user_name, action, client_addr, user_agent, detail)
        VALUES (uid, (SELECT name FROM users WHERE id = uid), 'signout', p_addr,
                left(p_agent, 512), jsonb_build_object('session_id', sid));
    END IF;
    RETURN uid;
END $$;

REVOKE ALL ON FUNCTION camvault_signin_lookup(text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_signin_failed(text, text, text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_session_start(bigint, bytea, timestamptz, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_session_authenticate(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION camvault_session_end(bytea, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camvault_signin_lookup(text, text, timestamptz) TO camvault_api;
GRANT EXECUTE ON FUNCTION camvault_signin_failed(text, text, text, text, boolean) TO camvault_api;
GRANT EXECUTE ON FUNCTION camvault_session_start(bigint, bytea, timestamptz, text, text)
    TO camvault_api;
GRANT EXECUTE ON FUNCTION camvault_session_authenticate(bytea) TO camvault_api;
GRANT EXECUTE ON FUNCTION camvault_session_end(bytea, text, text) TO camvault_api;
