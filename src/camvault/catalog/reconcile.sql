-- Named queries of the reconciler (camvault.reconcile), loaded by camvault.catalog.queries.

-- name: recon_rows_page
-- One camera's rows in one bucket under the key prefix, keyset-paginated on the
-- (camera_id, start_time) unique index. Keys are derived from (camera, start), so this
-- order is also the key order the S3 listing comes in.
SELECT s3_key, start_time
  FROM recordings
 WHERE camera_id = %(camera_id)s
   AND s3_bucket = %(bucket)s
   AND starts_with(s3_key, %(prefix)s)
   AND start_time > %(after)s
 ORDER BY start_time
 LIMIT %(limit)s;
