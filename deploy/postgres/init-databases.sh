#!/usr/bin/env bash
# Creates one database per Veta service, each owned by its own login role:
#   veta_certification, veta_listings, veta_orders, veta_payouts
# The postgres image runs this once, from /docker-entrypoint-initdb.d, on an empty data
# directory. It is idempotent, so it is also safe to run by hand against an existing server:
#   POSTGRES_USER=postgres VETA_DB_PASSWORD=... bash deploy/postgres/init-databases.sh
# Every role gets VETA_DB_PASSWORD (one password for the one-host setup; on Kubernetes each
# service database is its own CloudNativePG cluster with its own generated credentials).
#
# The body runs in a subshell, so that its shell options and variables stay its own even when
# the image's entrypoint sources the file instead of executing it (no executable bit).

veta_init_databases() (
  set -euo pipefail
  : "${VETA_DB_PASSWORD:?VETA_DB_PASSWORD must be set (the password of the per-service roles)}"
  services="${VETA_SERVICES:-certification listings orders payouts}"

  for service in $services; do
    name="veta_${service}"
    echo "init-databases: role and database ${name}"
    psql -v ON_ERROR_STOP=1 --no-psqlrc \
         --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
         -v name="${name}" -v password="${VETA_DB_PASSWORD}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SQL
  done
)

veta_init_databases
