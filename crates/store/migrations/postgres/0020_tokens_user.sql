-- A record that names an IAM user in one of the decoy accounts, and no indexed key, is looked up
-- by (account, user name): the key index no longer holds user names in memory. Tombstones had
-- this index already (0009); live tokens were scanned whole.
CREATE INDEX tokens_user ON tokens (account_id, username);
