-- camvault catalog, version 16: an export job says how its clip was assembled.
--
-- An export job's clip is spliced from the recordings' own samples when every recording
-- qualifies (one H.264/H.265 track, no B-frames, same codec settings, no audio kept), and
-- cut by ffmpeg otherwise; the two differ in time and memory, so the row records which
-- one ran ('splice' | 'ffmpeg'), set when the job is planned. NULL: not yet planned, or
-- run before version 16.
ALTER TABLE exports ADD COLUMN assembly text CHECK (assembly IN ('splice', 'ffmpeg'));
