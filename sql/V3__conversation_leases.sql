-- Several nodes (docs/cluster.md): which node runs a conversation's actor.
-- One row per running conversation; `fence` grows with every new claim and
-- every conversation write checks it in its own transaction, so a node that
-- lost its lease can never write. No foreign key: a conversation opened by a
-- visitor who has not written yet has a lease before it has a row.
CREATE TABLE conversation_leases (
    session_id  uuid PRIMARY KEY,
    node_id     text NOT NULL,
    fence       bigint NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE INDEX conversation_leases_node ON conversation_leases (node_id);
