-- xpra-relay cluster state (issue 16): the live nodes and the connections each relays.
-- Applied in file-name order by the relay (at its first connection to the database) and by
-- `xpra_relay cluster --cluster=URI migrate`, once each, recorded in xr_schema_version.
-- 001-009: cluster state (nodes, connections); 010 onwards: login policy (clusterpolicy).

CREATE TABLE xr_cluster_nodes (
    node          text        PRIMARY KEY,           -- --cluster-node (default HOSTNAME:PORT)
    address       text        NOT NULL DEFAULT '',   -- the node's first bind, for operators
    pid           integer     NOT NULL DEFAULT 0,
    version       text        NOT NULL DEFAULT '',
    ttl_ms        integer     NOT NULL CHECK (ttl_ms > 0),      -- --cluster-ttl
    heartbeat_ms  integer     NOT NULL CHECK (heartbeat_ms > 0), -- --cluster-heartbeat
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()  -- the database's clock, never a node's
);

-- Readers ignore a node whose heartbeat is older than its ttl; any live node deletes it
-- (its connections go with it).
CREATE INDEX xr_cluster_nodes_heartbeat ON xr_cluster_nodes (heartbeat_at);

CREATE TABLE xr_cluster_connections (
    node             text        NOT NULL REFERENCES xr_cluster_nodes (node) ON DELETE CASCADE,
    instance         text        NOT NULL,           -- ':proxy-N' on that node
    conn_id          bigint      NOT NULL DEFAULT 0,
    username         text        NOT NULL DEFAULT '',
    target           text        NOT NULL DEFAULT '',
    transport        text        NOT NULL DEFAULT '',
    client_address   text        NOT NULL DEFAULT '',
    started_at       timestamptz NOT NULL DEFAULT now(),
    bytes_to_client  bigint      NOT NULL DEFAULT 0,  -- refreshed with each heartbeat
    bytes_to_server  bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, instance)
);

CREATE INDEX xr_cluster_connections_username ON xr_cluster_connections (username);
