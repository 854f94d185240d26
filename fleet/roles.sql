-- badgedock fleet store: the roles. Run once per PostgreSQL cluster, as a superuser or a
-- role with CREATEROLE, BEFORE `badgedock fleet migrate`:
--
--   psql -v ON_ERROR_STOP=1 -d badgedock -f /usr/share/doc/badgedock/fleet/roles.sql
--
-- Two group roles, never used to log in:
--   badgedock_station  stations: write only their own rows (row-level security on
--                      stations.db_role = current_user), read the fleet's loans and
--                      their own admin requests.
--   badgedock_console  the web console: reads everything, may only queue admin requests.
-- The migrations (run by the database owner) grant these roles their privileges.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'badgedock_station') THEN
        CREATE ROLE badgedock_station NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'badgedock_console') THEN
        CREATE ROLE badgedock_console NOLOGIN;
    END IF;
END
$$;

-- Then, for each station (one login role per station, so RLS can tell them apart):
--
--   CREATE ROLE station_3west LOGIN PASSWORD '…' IN ROLE badgedock_station;
--   INSERT INTO badgedock.stations (station_id, db_role, name)
--       VALUES ('3west', 'station_3west', '3 West');
--
-- and for the console:
--
--   CREATE ROLE fleet_console LOGIN PASSWORD '…' IN ROLE badgedock_console;
--
-- A station logging in with a client certificate instead of a password: give the role
-- no password and add `hostssl badgedock station_3west 0.0.0.0/0 cert` to pg_hba.conf
-- (the certificate's CN must be the role name).
