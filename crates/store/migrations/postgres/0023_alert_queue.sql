-- The alerts table becomes the planner's queue: a row per alert still to plan, and nothing
-- after. Every other row was written to be read by no one: a use gathered into an open window
-- was stored in a final state at commit, and a planned alert stayed behind as 'sent',
-- 'ignored' or 'summarized'. Now a gathered use writes no alert row, and planning deletes the
-- row it claims (the claim is the DELETE, as it was the state's UPDATE).
--
-- An alert always shared its hit's id (`hit_id` = `id`), so the id alone links the two. The
-- foreign key that deleted a hit's alert with it goes with `hit_id`; retention deletes the
-- alerts of the hits it deletes, in the same transaction.
DELETE FROM alerts WHERE state <> 'new';
DROP INDEX alerts_new_time;
DROP INDEX alerts_token_new;
ALTER TABLE alerts DROP COLUMN hit_id, DROP COLUMN state, DROP COLUMN summary_id;
CREATE INDEX alerts_new_time ON alerts (created_at, id);
CREATE INDEX alerts_token_new ON alerts (token_id, created_at, id);
