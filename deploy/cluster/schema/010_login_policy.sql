-- xpra-relay: the login policy and user cache shared by the relays of a cluster (postgresql auth
-- module, cluster=yes). This file is compiled into the relay (auth/BUILD, genrule
-- postgresql_cluster_schema), which runs it at start: it is idempotent, so the relay's database
-- user needs the rights to create what it creates (docs/security.md). No BEGIN/COMMIT here: the
-- module sends it as one simple query (one implicit transaction) and the cluster's migration
-- runner (cluster/cluster_db.cc) applies it inside its own transaction.
SELECT pg_advisory_xact_lock(7871016);
-- Failed logins per source ('s': an IPv4 address, an IPv6 /64) and per user name ('u'), as the
-- relay's node-local Admission (engine/limits.h) keeps them, shared by every node.
CREATE TABLE IF NOT EXISTS xr_login_failures (
  kind "char" NOT NULL,
  key text NOT NULL,
  failures integer NOT NULL,
  last_at timestamptz NOT NULL,
  first_source text,
  many_sources boolean NOT NULL DEFAULT false,
  PRIMARY KEY (kind, key));
-- Sessions each node holds per user, and the nodes' heartbeats (rows of a node silent for the
-- TTL do not count).
CREATE TABLE IF NOT EXISTS xr_policy_nodes (node text PRIMARY KEY, seen_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS xr_user_sessions (
  node text NOT NULL,
  username text NOT NULL,
  sessions integer NOT NULL,
  PRIMARY KEY (node, username));

-- Milliseconds a login of p_user from p_source must wait (0: go ahead): after p_free failures the
-- wait doubles from 1 s per failure up to p_max_ms, counted from the last failure; failures older
-- than p_window_ms are forgotten; a user's own wait applies once its failures came from more than
-- one source.
-- (plpgsql: its plans are cached per connection; an SQL function that cannot be inlined is
-- planned again on every call, which cost 4x the database CPU per login.)
CREATE OR REPLACE FUNCTION xr_backoff_wait_ms(p_source text, p_user text, p_free integer, p_window_ms bigint,
                                              p_max_ms bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT COALESCE(max(GREATEST(0, ceil(extract(epoch FROM
            f.last_at + LEAST(1000 * 2 ^ (LEAST(f.failures - p_free, 30) - 1), p_max_ms) * interval '1 millisecond'
            - clock_timestamp()) * 1000))), 0)::bigint
    FROM xr_login_failures f
    WHERE ((f.kind = 's' AND f.key = p_source) OR (f.kind = 'u' AND f.key = p_user AND f.many_sources))
      AND f.failures > p_free
      AND clock_timestamp() - f.last_at <= p_window_ms * interval '1 millisecond');
END $$;

-- One failed login of p_user from p_source; now and then forgets failures older than the window.
CREATE OR REPLACE FUNCTION xr_login_failed(p_source text, p_user text, p_window_ms bigint)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO xr_login_failures AS f (kind, key, failures, last_at, first_source)
  VALUES ('s', p_source, 1, clock_timestamp(), NULL), ('u', p_user, 1, clock_timestamp(), p_source)
  ON CONFLICT (kind, key) DO UPDATE SET
    failures = CASE WHEN clock_timestamp() - f.last_at > p_window_ms * interval '1 millisecond' THEN 1
                    ELSE f.failures + 1 END,
    last_at = clock_timestamp(),
    many_sources = f.many_sources OR (f.kind = 'u' AND f.first_source IS DISTINCT FROM p_source);
  IF random() < 0.01 THEN
    DELETE FROM xr_login_failures WHERE clock_timestamp() - last_at > p_window_ms * interval '1 millisecond';
  END IF;
END $$;

-- Sessions p_user holds on the live nodes. (A connection table kept by the nodes can back this
-- function instead: xr_session_begin only needs the count.)
CREATE OR REPLACE FUNCTION xr_user_session_count(p_user text, p_ttl_ms bigint) RETURNS bigint
    LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT COALESCE(sum(s.sessions), 0)::bigint FROM xr_user_sessions s JOIN xr_policy_nodes n USING (node)
          WHERE s.username = p_user AND clock_timestamp() - n.seen_at <= p_ttl_ms * interval '1 millisecond');
END $$;

-- One more session of p_user on p_node unless the user holds p_max already: -1 when admitted,
-- else the sessions held.
CREATE OR REPLACE FUNCTION xr_session_begin(p_node text, p_user text, p_max integer, p_ttl_ms bigint)
    RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE held bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(7871017, hashtext(p_user));
  INSERT INTO xr_policy_nodes AS n VALUES (p_node, clock_timestamp())
    ON CONFLICT (node) DO UPDATE SET seen_at = EXCLUDED.seen_at;
  held := xr_user_session_count(p_user, p_ttl_ms);
  IF held >= p_max THEN RETURN held; END IF;
  INSERT INTO xr_user_sessions AS s VALUES (p_node, p_user, 1)
    ON CONFLICT (node, username) DO UPDATE SET sessions = s.sessions + 1;
  RETURN -1;
END $$;

CREATE OR REPLACE FUNCTION xr_session_end(p_node text, p_user text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE xr_user_sessions SET sessions = sessions - 1 WHERE node = p_node AND username = p_user;
  DELETE FROM xr_user_sessions WHERE node = p_node AND username = p_user AND sessions <= 0;
END $$;

-- The node is alive; nodes silent for ten TTLs are forgotten with their rows.
CREATE OR REPLACE FUNCTION xr_node_heartbeat(p_node text, p_ttl_ms bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO xr_policy_nodes AS n VALUES (p_node, clock_timestamp())
    ON CONFLICT (node) DO UPDATE SET seen_at = EXCLUDED.seen_at;
  DELETE FROM xr_user_sessions WHERE node IN
    (SELECT node FROM xr_policy_nodes WHERE clock_timestamp() - seen_at > 10 * p_ttl_ms * interval '1 millisecond');
  DELETE FROM xr_policy_nodes WHERE clock_timestamp() - seen_at > 10 * p_ttl_ms * interval '1 millisecond';
$$;

-- A change to xpra's users table tells every node to drop its cached row (channel xr_users,
-- payload: the user name, or '*' for all of them when the name is too long for a payload or the
-- table was truncated).
CREATE OR REPLACE FUNCTION xr_users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE name text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('xr_users', '*');
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    name := OLD.username;
    PERFORM pg_notify('xr_users', CASE WHEN octet_length(name) > 4000 OR name IS NULL THEN '*' ELSE name END);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    name := NEW.username;
    PERFORM pg_notify('xr_users', CASE WHEN octet_length(name) > 4000 OR name IS NULL THEN '*' ELSE name END);
  END IF;
  RETURN NULL;
END $$;
DO $$ BEGIN
  IF to_regclass('users') IS NOT NULL THEN
    CREATE OR REPLACE TRIGGER xr_users_notify AFTER INSERT OR UPDATE OR DELETE ON users
      FOR EACH ROW EXECUTE FUNCTION xr_users_notify();
    CREATE OR REPLACE TRIGGER xr_users_truncate AFTER TRUNCATE ON users
      FOR EACH STATEMENT EXECUTE FUNCTION xr_users_notify();
  END IF;
END $$;
