-- The operator channel's memory. One row per subject (a detection path, the heartbeat call in
-- one account and region, the disk, the safety net in one account): its last reported state,
-- and the level of the last alert sent about it ('bad' or 'good'; NULL when none was), so an
-- alert is sent once per change and never while a state holds. Reports compare and write it in
-- the transaction that queues their alert, so replicas cannot both send one.
CREATE TABLE operator_conditions (
    subject     TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL,
    alerted     TEXT,
    detail      TEXT NOT NULL,
    changed_at  BIGINT NOT NULL
);

-- Timers shared by every replica ('alive': the watchdog's next due time). A replica takes a
-- turn by moving `due_at` forward only if it is still due, so one turn is taken per interval
-- in all.
CREATE TABLE operator_timers (
    name     TEXT PRIMARY KEY NOT NULL,
    due_at   BIGINT NOT NULL,
    last_at  BIGINT
);
