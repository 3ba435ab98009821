-- Streams (`[streams.<type>]`) write deliveries with no token in lanes of their own
-- ('stream/<type>'). Per-lane counts by state (a stream's backlog and failures, the operator
-- channel's status) read this index instead of every token-less row.
CREATE INDEX deliveries_lane_state ON deliveries (lane, state);
