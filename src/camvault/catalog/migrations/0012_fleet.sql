-- camvault catalog, version 12: a fleet of nodes sharing the cameras through leases.
--
-- Every `camvault run` is a node (`nodes`: heartbeat, capacity, spool depth, last error).
-- A camera is recorded by the node holding its lease (`camera_leases`). Times are the
-- database's clock (now()), never a node's: expiry is decided in one place. `epoch` is a
-- fencing number, incremented for every new holder, so a stale holder's writes can be told
-- apart. Claiming uses FOR UPDATE SKIP LOCKED on short transactions; no lock is held
-- across a network wait.

-- RTSP source of a camera managed in the catalog (NULL = drop-in / ingest only).
ALTER TABLE cameras ADD COLUMN url text;

-- The node that recorded (spooled) a segment; NULL for rows from before version 12.
ALTER TABLE recordings ADD COLUMN node_id text;

CREATE TABLE nodes (
    node_id      text PRIMARY KEY CHECK (node_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    version      text NOT NULL DEFAULT '',
    max_cameras  integer NOT NULL DEFAULT 0 CHECK (max_cameras >= 0),  -- 0 = no limit
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    spool_depth  integer NOT NULL DEFAULT 0,
    cameras_held integer NOT NULL DEFAULT 0,
    draining     boolean NOT NULL DEFAULT false,  -- `camvault nodes drain`: hand all off
    last_error   text NOT NULL DEFAULT ''
);

CREATE TABLE camera_leases (
    camera_id    text PRIMARY KEY REFERENCES cameras (id) ON DELETE CASCADE,
    holder       text,                        -- NULL: free
    epoch        bigint NOT NULL DEFAULT 0,   -- fencing number: +1 for every new holder
    acquired_at  timestamptz,
    renewed_at   timestamptz,
    expires_at   timestamptz NOT NULL DEFAULT 'epoch',  -- never held: long expired
    -- a node below its share asks the holder to hand this camera over (orderly: the
    -- holder finalizes its open segment, then releases)
    handoff_to   text
);
-- Renewals rewrite expires_at of every lease every ttl/3 (10,000 cameras: ~2,000 rows/s):
-- expires_at is in no index and pages keep free room, so they are HOT updates (no index
-- writes, little bloat). The holder changes only on a claim.
ALTER TABLE camera_leases SET (fillfactor = 50);
CREATE INDEX camera_leases_holder_idx ON camera_leases (holder);

-- Alert de-duplication shared by every node (was process memory: one storm per node).
CREATE TABLE alert_state (
    camera_id  text PRIMARY KEY,
    last_sent  timestamptz NOT NULL,
    suppressed integer NOT NULL DEFAULT 0
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['nodes', 'camera_leases', 'alert_state'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL TO camvault_service '
                       'USING (true) WITH CHECK (true)', t || '_service', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO camvault_service', t);
    END LOOP;
END $$;

-- The API: admins see the fleet (GET /api/nodes) and manage camera definitions.
CREATE POLICY nodes_api ON nodes FOR SELECT TO camvault_api USING ((SELECT camvault_is_admin()));
CREATE POLICY camera_leases_api ON camera_leases FOR SELECT TO camvault_api
    USING ((SELECT camvault_is_admin()));
GRANT SELECT ON nodes, camera_leases TO camvault_api;
CREATE POLICY cameras_api_admin ON cameras FOR ALL TO camvault_api
    USING ((SELECT camvault_is_admin())) WITH CHECK ((SELECT camvault_is_admin()));
GRANT INSERT, UPDATE, DELETE ON cameras TO camvault_api;
