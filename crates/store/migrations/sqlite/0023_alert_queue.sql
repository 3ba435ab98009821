-- The alerts table becomes the planner's queue: a row per alert still to plan, and nothing
-- after. Every other row was written to be read by no one: a use gathered into an open window
-- was stored in a final state at commit, and a planned alert stayed behind as 'sent',
-- 'ignored' or 'summarized'. Each such row cost about 190 bytes a hit on disk (the row, its id
-- index and its hit-id index). Now a gathered use writes no alert row, and planning deletes the
-- row it claims (the claim is the DELETE, as it was the state's UPDATE).
--
-- An alert always shared its hit's id (`hit_id` = `id`), so the id alone links the two, and
-- without `state` nothing needs a second index on the id: the table is keyed by it. The
-- foreign key that deleted a hit's alert with it goes too; retention deletes the alerts of
-- the hits it deletes, in the same statement's transaction.
CREATE TABLE alerts_queue (
    id          TEXT PRIMARY KEY NOT NULL,
    token_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO alerts_queue (id, token_id, created_at)
SELECT hit_id, token_id, created_at FROM alerts WHERE state = 'new';
DROP TABLE alerts;
ALTER TABLE alerts_queue RENAME TO alerts;
CREATE INDEX alerts_new_time ON alerts (created_at, id);
CREATE INDEX alerts_token_new ON alerts (token_id, created_at, id);
