-- An alert row is looked up in two ways: the planner's new alerts in time order (overall, and
-- each token's oldest, served by alerts_token_new), and by its hit. Most rows are written in a
-- final state (a use gathered into an open window's summary), and every alert leaves `new` within
-- a round, yet both older indexes held every row in every state: two index writes per hit that no
-- query read (nothing asks for alerts by token and state, and only `new` is asked for by state).
DROP INDEX alerts_token;
DROP INDEX alerts_state;
CREATE INDEX alerts_new_time ON alerts (created_at, id) WHERE state = 'new';
