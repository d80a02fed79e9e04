-- Named queries of the fleet: nodes, camera leases, catalog-managed cameras, alert state
-- (camvault.fleet.store). Every time is the database's now(): one clock for expiry.

-- name: heartbeat
INSERT INTO nodes (node_id, version, max_cameras, spool_depth, cameras_held, last_error)
VALUES (%(node_id)s, %(version)s, %(max_cameras)s, %(spool_depth)s, %(cameras_held)s,
        %(last_error)s)
ON CONFLICT (node_id) DO UPDATE
   SET version = EXCLUDED.version,
       max_cameras = EXCLUDED.max_cameras,
       heartbeat_at = now(),
       spool_depth = EXCLUDED.spool_depth,
       cameras_held = EXCLUDED.cameras_held,
       last_error = EXCLUDED.last_error
RETURNING draining;

-- name: node_started
-- (a drained node stays drained across restarts until `camvault nodes undrain`)
UPDATE nodes SET started_at = now() WHERE node_id = %(node_id)s;

-- name: ensure_leases
-- one lease row per recordable camera (a camera added by any means gets one here)
INSERT INTO camera_leases (camera_id)
SELECT id FROM cameras WHERE url IS NOT NULL AND enabled
ON CONFLICT (camera_id) DO NOTHING;

-- name: renew
-- Renew what we still hold; an expired lease is not renewed (it may be someone else's
-- by now: it must be claimed again, with a new epoch). It also keeps last_end, where the
-- next holder may start (after our latest segment of each camera we record: %(cameras)s/
-- %(ends)s, in pairs), for a failover; it never moves back (greatest skips NULL).
UPDATE camera_leases l
   SET expires_at = now() + make_interval(secs => %(ttl)s), renewed_at = now(),
       last_end = greatest(l.last_end, e.last_end)
  FROM cameras c
  LEFT JOIN unnest(%(cameras)s::text[], %(ends)s::timestamptz[]) AS e (camera_id, last_end)
    ON e.camera_id = c.id
 WHERE l.holder = %(node_id)s AND l.expires_at > now() AND c.id = l.camera_id
RETURNING l.camera_id, l.epoch, l.handoff_to, c.url, c.segment_seconds, c.enabled, l.last_end;

-- name: fleet_view
-- Live nodes (heartbeat within the lease time, not draining), recordable cameras, and
-- how many live leases each node holds: the input of the balancing decision.
SELECT (SELECT count(*) FROM nodes n
         WHERE n.heartbeat_at > now() - make_interval(secs => %(ttl)s)
           AND NOT n.draining) AS live_nodes,
       (SELECT count(*) FROM cameras c WHERE c.url IS NOT NULL AND c.enabled) AS cameras,
       (SELECT count(*) FROM cameras c LEFT JOIN camera_leases l ON l.camera_id = c.id
         WHERE c.url IS NOT NULL AND c.enabled
           AND (l.camera_id IS NULL  -- new camera: its lease row is made by the claim
                OR ((l.holder IS NULL OR l.expires_at <= now())
                    AND (l.handoff_to IS NULL OR l.handoff_to = %(node_id)s
                         OR l.expires_at <= now() - make_interval(secs => %(ttl)s))))) AS free,
       -- (holders that are no registered node — `camvault record` — are never asked to
       -- hand over: they record exactly the cameras their operator named)
       (SELECT coalesce(json_object_agg(holder, n), '{}')
          FROM (SELECT holder, count(*) AS n FROM camera_leases
                 WHERE holder IS NOT NULL AND expires_at > now()
                   AND holder IN (SELECT node_id FROM nodes) GROUP BY holder) h) AS held,
       -- hand-offs to us under way: counted as ours, or we would ask again and again
       (SELECT count(*) FROM camera_leases
         WHERE handoff_to = %(node_id)s AND holder IS NOT NULL AND holder <> %(node_id)s
           AND expires_at > now()) AS incoming;

-- name: claim
-- Take up to n free or expired leases: first those handed to us, then the longest
-- expired. A camera handed to another node is left to it (for a lease time: then it is
-- anyone's). SKIP LOCKED: two nodes claiming at once never wait for, nor take, one row.
WITH pick AS (
    SELECT l.camera_id
      FROM camera_leases l JOIN cameras c ON c.id = l.camera_id
     WHERE c.url IS NOT NULL AND c.enabled
       AND (l.holder IS NULL OR l.expires_at <= now())
       AND (l.handoff_to IS NULL OR l.handoff_to = %(node_id)s
            OR l.expires_at <= now() - make_interval(secs => %(ttl)s))
     ORDER BY (l.handoff_to IS NOT DISTINCT FROM %(node_id)s) DESC, l.expires_at, l.camera_id
     LIMIT %(n)s
       FOR UPDATE OF l SKIP LOCKED)
UPDATE camera_leases l
   SET holder = %(node_id)s, epoch = l.epoch + 1, acquired_at = now(), renewed_at = now(),
       expires_at = now() + make_interval(secs => %(ttl)s), handoff_to = NULL
  FROM pick
 WHERE l.camera_id = pick.camera_id
RETURNING l.camera_id, l.epoch;

-- name: request_handoff
-- Ask the donor to hand n of its cameras over to us, and wake it (NOTIFY, delivered on
-- commit): it stops them at once instead of at its next renewal.
WITH pick AS (
    SELECT l.camera_id
      FROM camera_leases l
     WHERE l.holder = %(donor)s AND l.expires_at > now() AND l.handoff_to IS NULL
     ORDER BY l.camera_id
     LIMIT %(n)s
       FOR UPDATE SKIP LOCKED),
asked AS (
    UPDATE camera_leases l SET handoff_to = %(node_id)s
      FROM pick JOIN cameras c ON c.id = pick.camera_id
     WHERE l.camera_id = pick.camera_id
    RETURNING l.camera_id, c.url)
SELECT camera_id, url, pg_notify('camvault_leases', %(donor)s) AS woken FROM asked;

-- name: release
-- Give a lease up now (its recorder has stopped and spooled its open segment). Asked for
-- by a live node (a hand-off): the lease passes to that node in this same transaction —
-- new epoch, expiry by the database clock — so it needs no claim round of its own; else
-- it is free at once for anyone. Either way the waiting node(s) are woken by NOTIFY
-- (delivered on commit, so never before the lease is theirs to take). It keeps last_end,
-- after the holder's last segment: the next holder starts nothing before it.
WITH target AS (
    SELECT l.camera_id, n.node_id AS heir
      FROM camera_leases l
      LEFT JOIN nodes n
        ON n.node_id = l.handoff_to AND NOT n.draining
       AND n.heartbeat_at > now() - make_interval(secs => %(ttl)s)
     WHERE l.camera_id = %(camera_id)s AND l.holder = %(node_id)s AND l.epoch = %(epoch)s
       FOR UPDATE OF l),
done AS (
    UPDATE camera_leases l
       SET holder = t.heir,
           epoch = l.epoch + (t.heir IS NOT NULL)::int,
           acquired_at = CASE WHEN t.heir IS NULL THEN l.acquired_at ELSE now() END,
           renewed_at = CASE WHEN t.heir IS NULL THEN l.renewed_at ELSE now() END,
           expires_at = CASE WHEN t.heir IS NULL THEN now()
                             ELSE now() + make_interval(secs => %(ttl)s) END,
           handoff_to = NULL,
           last_end = greatest(l.last_end, %(last_end)s::timestamptz)
      FROM target t
     WHERE l.camera_id = t.camera_id
    RETURNING l.camera_id, l.holder AS heir, l.epoch)
SELECT camera_id, heir, epoch, pg_notify('camvault_leases', coalesce(heir, '*')) AS woken
  FROM done;

-- name: claim_named
-- `camvault record`: take exactly these cameras' leases where free or expired (a camera
-- handed to a node is left to it for a lease time, as in claim).
WITH pick AS (
    SELECT l.camera_id
      FROM camera_leases l JOIN cameras c ON c.id = l.camera_id
     WHERE l.camera_id = ANY(%(cameras)s) AND c.url IS NOT NULL AND c.enabled
       AND (l.holder IS NULL OR l.expires_at <= now())
       AND (l.handoff_to IS NULL OR l.handoff_to = %(node_id)s
            OR l.expires_at <= now() - make_interval(secs => %(ttl)s))
     ORDER BY l.camera_id
       FOR UPDATE OF l SKIP LOCKED)
UPDATE camera_leases l
   SET holder = %(node_id)s, epoch = l.epoch + 1, acquired_at = now(), renewed_at = now(),
       expires_at = now() + make_interval(secs => %(ttl)s), handoff_to = NULL
  FROM pick
 WHERE l.camera_id = pick.camera_id
RETURNING l.camera_id, l.epoch;

-- name: set_draining
UPDATE nodes SET draining = %(draining)s WHERE node_id = %(node_id)s RETURNING node_id;

-- name: list_nodes
SELECT n.node_id, n.version, n.max_cameras, n.started_at, n.heartbeat_at, n.spool_depth,
       n.cameras_held, n.draining, n.last_error,
       n.heartbeat_at > now() - make_interval(secs => %(ttl)s) AS alive,
       (SELECT coalesce(array_agg(l.camera_id ORDER BY l.camera_id), '{}')
          FROM camera_leases l
         WHERE l.holder = n.node_id AND l.expires_at > now()) AS cameras
  FROM nodes n
 ORDER BY n.node_id;

-- name: list_leases
SELECT c.id AS camera_id, c.enabled, c.url IS NOT NULL AS recordable, l.holder, l.epoch,
       l.expires_at, l.handoff_to, coalesce(l.expires_at > now(), false) AS live
  FROM cameras c LEFT JOIN camera_leases l ON l.camera_id = c.id
 ORDER BY c.id;

-- name: forget_node
DELETE FROM nodes WHERE node_id = %(node_id)s RETURNING node_id;

-- name: upsert_fleet_camera
INSERT INTO cameras (id, name, segment_seconds, enabled, url)
VALUES (%(id)s, %(name)s, %(segment_seconds)s, %(enabled)s, %(url)s)
ON CONFLICT (id) DO UPDATE
   SET name = EXCLUDED.name,
       segment_seconds = EXCLUDED.segment_seconds,
       enabled = EXCLUDED.enabled,
       url = EXCLUDED.url
RETURNING id, name, segment_seconds, enabled, url, created_at;

-- name: update_fleet_camera
-- NULL parameters keep the current value; clear_url drops the RTSP source.
UPDATE cameras
   SET name = coalesce(%(name)s, name),
       segment_seconds = coalesce(%(segment_seconds)s, segment_seconds),
       enabled = coalesce(%(enabled)s, enabled),
       url = CASE WHEN %(clear_url)s THEN NULL ELSE coalesce(%(url)s, url) END
 WHERE id = %(id)s
RETURNING id, name, segment_seconds, enabled, url, created_at;

-- name: get_fleet_camera
SELECT id, name, segment_seconds, enabled, url, created_at FROM cameras WHERE id = %(id)s;

-- name: list_fleet_cameras
SELECT id, name, segment_seconds, enabled, url, created_at FROM cameras ORDER BY id;

-- name: delete_camera
DELETE FROM cameras WHERE id = %(id)s RETURNING id;

-- name: alert_state_lock
SELECT last_sent, suppressed, now() AS now FROM alert_state
 WHERE camera_id = %(camera_id)s FOR UPDATE;

-- name: alert_state_insert
INSERT INTO alert_state (camera_id, last_sent, suppressed) VALUES (%(camera_id)s, now(), 0)
ON CONFLICT (camera_id) DO NOTHING
RETURNING camera_id;

-- name: alert_state_update
UPDATE alert_state SET last_sent = %(last_sent)s, suppressed = %(suppressed)s
 WHERE camera_id = %(camera_id)s;

-- name: alert_state_delete
DELETE FROM alert_state WHERE camera_id = %(camera_id)s;

-- name: alert_state_cameras
SELECT camera_id FROM alert_state ORDER BY camera_id;
