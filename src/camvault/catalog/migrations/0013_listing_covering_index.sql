-- camvault catalog, version 13: the recordings listing becomes an index-only scan.
--
-- A 24 h listing of one camera returns ~288 rows; in a busy catalog each of them sits on
-- its own heap page (a thousand cameras insert interleaved in time), so the scan of the
-- (camera_id, start_time) index paid ~288 random heap reads and missed its p99 goal at
-- 10 M rows. This index holds every column of the live rows, in listing order
-- (camera_id, start_time, id — the API's ORDER BY, so no sort either), so the listing
-- (`recordings_page[_after]`, `list_recordings`) reads a few adjacent leaf pages and the
-- visibility map instead (rows not yet vacuumed are still read from the heap, correctly).
--
-- The INCLUDE list is every other column of `recordings` at the time this runs, so a
-- migration that adds a column to `recordings` later must recreate this index
-- (tests/integration/test_listing_index.py fails until it does). It replaces
-- recordings_live_idx (0003), whose key it extends: retention sync's walk of a camera's
-- live rows in start order uses this one.
DO $$
DECLARE
    included text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO included
      FROM pg_attribute
     WHERE attrelid = 'recordings'::regclass AND attnum > 0 AND NOT attisdropped
       AND attname NOT IN ('camera_id', 'start_time', 'id');
    EXECUTE format(
        'CREATE INDEX recordings_listing_idx ON recordings (camera_id, start_time, id)'
        ' INCLUDE (%s) WHERE deleted_at IS NULL', included);
END
$$;

DROP INDEX IF EXISTS recordings_live_idx;
