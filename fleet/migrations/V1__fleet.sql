-- badgedock fleet store, version 1. Applied by `badgedock fleet migrate` as the
-- database owner, after fleet/roles.sql created the group roles.
CREATE SCHEMA badgedock;
GRANT USAGE ON SCHEMA badgedock TO badgedock_station, badgedock_console;

-- The stations, registered by the operator: station_id is what the station's
-- [fleet] station-id says; db_role is the PostgreSQL role it logs in as.
CREATE TABLE badgedock.stations (
    station_id text PRIMARY KEY CHECK (length(station_id) > 0),
    db_role    name NOT NULL UNIQUE,
    name       text NOT NULL
);

-- The station of the role running the statement (NULL for any other role). Row-level
-- security policies compare rows to it.
CREATE FUNCTION badgedock.my_station() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT station_id FROM badgedock.stations WHERE db_role = current_user $$;

-- One row per station, replaced at every heartbeat.
CREATE TABLE badgedock.heartbeats (
    station_id      text PRIMARY KEY REFERENCES badgedock.stations,
    at              timestamptz NOT NULL,
    version         text NOT NULL,
    health          text NOT NULL CHECK (health IN ('ok', 'degraded')),
    readers_online  integer NOT NULL,
    readers_total   integer NOT NULL,
    mdm_reachable   boolean,
    actions_waiting integer NOT NULL,
    slots_ready     integer NOT NULL,
    slots_total     integer NOT NULL,
    loans           integer NOT NULL,
    detail          text NOT NULL
);

-- The audit log of every station, idempotent by (station, sequence): a batch sent twice
-- (after a crash between PostgreSQL's commit and the station's cursor) changes nothing.
-- Badge numbers arrive redacted.
CREATE TABLE badgedock.events (
    station_id text NOT NULL REFERENCES badgedock.stations,
    seq        bigint NOT NULL CHECK (seq > 0),
    at         timestamptz NOT NULL,
    kind       text NOT NULL,
    reader     text,
    badge      text,
    username   text,
    device     text,
    slot       text,
    detail     text NOT NULL,
    PRIMARY KEY (station_id, seq)
);
CREATE INDEX events_by_user ON badgedock.events (username, at);
CREATE INDEX events_by_device ON badgedock.events (device, at);
CREATE INDEX events_by_time ON badgedock.events (at);

-- Each station's slots and loans now, replaced as a whole when they change.
CREATE TABLE badgedock.slots (
    station_id  text NOT NULL REFERENCES badgedock.stations,
    label       text NOT NULL,
    position    integer NOT NULL,
    state       text NOT NULL,
    device      text,
    platform    text,
    device_name text,
    holder      text,
    since       timestamptz,
    sync        text NOT NULL,
    PRIMARY KEY (station_id, label)
);
CREATE TABLE badgedock.loans (
    station_id  text NOT NULL REFERENCES badgedock.stations,
    device      text NOT NULL,
    platform    text NOT NULL,
    device_name text,
    username    text NOT NULL,
    holder      text NOT NULL,
    slot        text NOT NULL,
    since       timestamptz NOT NULL,
    overdue     boolean NOT NULL,
    PRIMARY KEY (station_id, device)
);
CREATE INDEX loans_by_user ON badgedock.loans (username);

-- Admin requests from the console, carried out by the owning station: it sets done_at
-- and outcome in the same transaction as it acknowledges the request.
CREATE TABLE badgedock.admin_requests (
    id           bigserial PRIMARY KEY,
    station_id   text NOT NULL REFERENCES badgedock.stations,
    command      jsonb NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    outcome      text
);
CREATE INDEX admin_requests_open ON badgedock.admin_requests (station_id, id)
    WHERE done_at IS NULL;

-- Privileges. Stations read the registry and every station's loans (the cross-station
-- limit); they write only their own rows, which row-level security enforces.
GRANT SELECT ON badgedock.stations TO badgedock_station, badgedock_console;
GRANT EXECUTE ON FUNCTION badgedock.my_station() TO badgedock_station, badgedock_console;
GRANT SELECT, INSERT, UPDATE, DELETE ON badgedock.heartbeats, badgedock.slots, badgedock.loans
    TO badgedock_station;
GRANT SELECT, INSERT ON badgedock.events TO badgedock_station;
GRANT SELECT, UPDATE (done_at, outcome) ON badgedock.admin_requests TO badgedock_station;
GRANT SELECT ON badgedock.heartbeats, badgedock.events, badgedock.slots, badgedock.loans,
    badgedock.admin_requests TO badgedock_console;
GRANT INSERT (station_id, command, requested_by) ON badgedock.admin_requests
    TO badgedock_console;
GRANT USAGE ON SEQUENCE badgedock.admin_requests_id_seq TO badgedock_console;

ALTER TABLE badgedock.heartbeats ENABLE ROW LEVEL SECURITY;
ALTER TABLE badgedock.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE badgedock.slots ENABLE ROW LEVEL SECURITY;
ALTER TABLE badgedock.loans ENABLE ROW LEVEL SECURITY;
ALTER TABLE badgedock.admin_requests ENABLE ROW LEVEL SECURITY;

-- Everyone with SELECT reads every row (the console, and stations for the fleet view).
CREATE POLICY read_all ON badgedock.heartbeats FOR SELECT USING (true);
CREATE POLICY read_all ON badgedock.events FOR SELECT USING (true);
CREATE POLICY read_all ON badgedock.slots FOR SELECT USING (true);
CREATE POLICY read_all ON badgedock.loans FOR SELECT USING (true);
CREATE POLICY read_all ON badgedock.admin_requests FOR SELECT USING (true);

-- A station writes its own rows only.
CREATE POLICY own_insert ON badgedock.heartbeats FOR INSERT TO badgedock_station
    WITH CHECK (station_id = badgedock.my_station());
CREATE POLICY own_update ON badgedock.heartbeats FOR UPDATE TO badgedock_station
    USING (station_id = badgedock.my_station())
    WITH CHECK (station_id = badgedock.my_station());
CREATE POLICY own_insert ON badgedock.events FOR INSERT TO badgedock_station
    WITH CHECK (station_id = badgedock.my_station());
CREATE POLICY own_insert ON badgedock.slots FOR INSERT TO badgedock_station
    WITH CHECK (station_id = badgedock.my_station());
CREATE POLICY own_delete ON badgedock.slots FOR DELETE TO badgedock_station
    USING (station_id = badgedock.my_station());
CREATE POLICY own_insert ON badgedock.loans FOR INSERT TO badgedock_station
    WITH CHECK (station_id = badgedock.my_station());
CREATE POLICY own_delete ON badgedock.loans FOR DELETE TO badgedock_station
    USING (station_id = badgedock.my_station());
CREATE POLICY own_ack ON badgedock.admin_requests FOR UPDATE TO badgedock_station
    USING (station_id = badgedock.my_station())
    WITH CHECK (station_id = badgedock.my_station());
-- The console queues requests for any station.
CREATE POLICY console_queue ON badgedock.admin_requests FOR INSERT TO badgedock_console
    WITH CHECK (true);
