-- Deliveries go out in order per lane (token, channel): a worker claims a lane by its oldest
-- pending row, and a row is a lane's head only when no earlier row of the lane is pending.
-- This index answers "the lane's pending rows, oldest first" without reading its delivered
-- history.
CREATE INDEX deliveries_pending_lane ON deliveries (token_id, channel, created_at, id)
    WHERE state = 'pending';
