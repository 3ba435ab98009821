-- A hit's raw record, zstd-compressed with the dictionary built into the binary (the store's
-- `packed` module: a form byte, the text's length, the frame). New rows keep `raw` empty and
-- the record here; rows from before keep their text in `raw` and NULL here, and read as they
-- are, so nothing is rewritten.
ALTER TABLE hits ADD COLUMN raw_packed BYTEA;
