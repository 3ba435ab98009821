-- Deliveries that belong to no token: operator alerts (`[operator_alerts]`) have a NULL
-- token_id and lanes of their own ('operator/<channel>').
ALTER TABLE deliveries ALTER COLUMN token_id DROP NOT NULL;
