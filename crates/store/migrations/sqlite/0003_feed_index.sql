-- The console's alert feed and its live stream read hits newest-arrival first, across tokens.
CREATE INDEX hits_received_at ON hits (received_at);
