-- Addresses an operator has signed in from (an IPv6 client by its /64). A lockout after failed
-- sign-ins stops strangers, not the operator: a right password from a known address still
-- signs in, so nobody can lock an operator out from elsewhere by guessing.
CREATE TABLE login_addresses (
    operator_id   TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (operator_id, address)
);
