-- The application's Postgres roles by purpose (components/database_roles.py, docs/data-tier.md).
-- Run by the database-bootstrap Job as the RDS master user on every change of a role's password
-- or of this file; every statement is idempotent, so a re-run converges to the same state.
--
--   app             DML on the application schema, reached through PgBouncer (DATABASE_URL_POOLED)
--   migrator        owns the schema and its objects: DDL, the direct DATABASE_URL
--   pgbouncer_auth  PgBouncer's auth_user: may only call pgbouncer.get_auth()
--
-- Each purpose is a NOLOGIN group role holding the privileges, with two LOGIN members, <role>_a
-- and <role>_b. A rotation sets the password of the login the new generation names and leaves the
-- other one as it was, so pods still holding the previous credentials keep connecting until they
-- are replaced (the alternating-users scheme of Secrets Manager's multi-user rotation).
\set ON_ERROR_STOP on
\getenv schema APP_SCHEMA
\getenv dbname PGDATABASE
\getenv app_login APP_LOGIN
\getenv app_password APP_PASSWORD
\getenv migrator_login MIGRATOR_LOGIN
\getenv migrator_password MIGRATOR_PASSWORD
\getenv auth_login PGBOUNCER_AUTH_LOGIN
\getenv auth_password PGBOUNCER_AUTH_PASSWORD

SET password_encryption = 'scram-sha-256';

DO $$
DECLARE
  purpose text;
  login text;
BEGIN
  FOREACH purpose IN ARRAY ARRAY['app', 'migrator', 'pgbouncer_auth'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = purpose) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', purpose);
    END IF;
    FOREACH login IN ARRAY ARRAY[purpose || '_a', purpose || '_b'] LOOP
      IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = login) THEN
        -- No password yet: it cannot log in until a generation names it.
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE IN ROLE %I', login, purpose);
      END IF;
      -- Sessions act as the group role, so the objects a migration creates belong to "migrator".
      EXECUTE format('ALTER ROLE %I SET role = %L', login, purpose);
    END LOOP;
  END LOOP;
END
$$;

-- This generation's logins; psql quotes :"identifier" and :'literal' itself.
ALTER ROLE :"app_login" WITH LOGIN PASSWORD :'app_password';
ALTER ROLE :"migrator_login" WITH LOGIN PASSWORD :'migrator_password';
ALTER ROLE :"auth_login" WITH LOGIN PASSWORD :'auth_password';
ALTER ROLE :"app_login" SET search_path = :"schema";
ALTER ROLE :"migrator_login" SET search_path = :"schema";

-- The master user administers the roles it created (PostgreSQL 16+); membership lets it create
-- the schema on migrator's behalf and set migrator's default privileges.
GRANT migrator TO CURRENT_USER;
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION migrator;
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO app, migrator;
GRANT CONNECT ON DATABASE :"dbname" TO pgbouncer_auth;
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema" TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA :"schema" TO app;
ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA :"schema"
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app;
ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA :"schema"
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO app;

-- PgBouncer's auth_query: the SCRAM verifier of an app login, and of nothing else (not the
-- master, not migrator). SECURITY DEFINER runs it with the owner's (the master user's) rights,
-- as PgBouncer's documentation recommends over giving auth_user pg_shadow itself.
CREATE SCHEMA IF NOT EXISTS pgbouncer;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO pgbouncer_auth;
CREATE OR REPLACE FUNCTION pgbouncer.get_auth(p_usename text)
  RETURNS TABLE (usename text, passwd text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog
AS $$
  SELECT s.usename::text, s.passwd::text
    FROM pg_catalog.pg_shadow s
   WHERE s.usename = p_usename
     AND s.usename IN ('app_a', 'app_b')
$$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer_auth;
