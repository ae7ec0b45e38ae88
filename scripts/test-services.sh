#!/usr/bin/env bash
# Prepares the local services the test suite talks to, and fails (never
# skips) when one cannot be reached:
#   - PostgreSQL on 127.0.0.1:5432 (trust auth for user postgres), started
#     if it is down; members of the role rotator_test_password_auth must
#     authenticate by password (scram-sha-256), so the postgres-role
#     provider's tests can prove that a wrong or revoked password fails.
#   - Redis on 127.0.0.1:6379, started if it is down.
#   - MariaDB (or MySQL) on 127.0.0.1:3306 (root without a password from
#     127.0.0.1, for the mysql-user provider's tests), started if it is down.
#   - promtool (Debian's prometheus package), installed if it is missing.
#   - chromium (Debian's package), installed if it is missing: the
#     dashboard's browser test (internal/dashboard) drives it headless.
# Safe to run again: it changes nothing that is already in place.
set -euo pipefail

PGURL="${ROTATOR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
HBA_LINE="host all +rotator_test_password_auth 127.0.0.1/32 scram-sha-256"

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
  echo "test-services: PostgreSQL is down; starting it"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! pg_up; then
  echo "test-services: FAIL: PostgreSQL is unreachable on 127.0.0.1:5432" >&2
  exit 1
fi

psql -q "$PGURL" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rotator_test_password_auth') THEN
    CREATE ROLE rotator_test_password_auth NOLOGIN;
  END IF;
END $$;
SQL
hba=$(psql -Atq "$PGURL" -c 'SHOW hba_file')
if ! grep -qF "$HBA_LINE" "$hba" 2>/dev/null; then
  if [ -w "$hba" ]; then
    echo "test-services: adding password authentication for rotator_test_password_auth to $hba"
    cp "$hba" "$hba.rotator-backup"
    # Before the first rule, so it wins over any trust line.
    awk -v line="$HBA_LINE" 'done == 0 && $0 !~ /^[[:space:]]*(#|$)/ { print "# rotator tests: members of this role authenticate by password"; print line; done = 1 } { print }' \
      "$hba.rotator-backup" > "$hba"
    psql -Atq "$PGURL" -c 'SELECT pg_reload_conf()' >/dev/null
  else
    echo "test-services: FAIL: $hba needs the line '$HBA_LINE' before any trust line (not writable by $(id -un))" >&2
    exit 1
  fi
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  echo "test-services: Redis is down; starting it"
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
fi
if ! redis_up; then
  echo "test-services: FAIL: Redis is unreachable on 127.0.0.1:6379" >&2
  exit 1
fi
MYSQL_ARGS=(-h 127.0.0.1 -P 3306 -u root --connect-timeout=2)
mysql_up() { mysql "${MYSQL_ARGS[@]}" -e 'SELECT 1' >/dev/null 2>&1; }
if ! mysql_up; then
  echo "test-services: MariaDB is down; starting it"
  if [ -x /etc/init.d/mariadb ] && command -v service >/dev/null; then
    service mariadb start >/dev/null 2>&1 || true
  elif command -v mysqld_safe >/dev/null; then
    mkdir -p /run/mysqld 2>/dev/null || true
    chown mysql:mysql /run/mysqld 2>/dev/null || true
    (nohup mysqld_safe --bind-address=127.0.0.1 >/dev/null 2>&1 &) || true
  fi
  for _ in $(seq 1 30); do mysql_up && break; sleep 1; done
fi
if ! mysql_up; then
  echo "test-services: FAIL: MariaDB is unreachable on 127.0.0.1:3306 as root without a password" >&2
  exit 1
fi
# promtool checks examples/prometheus-rules.yaml (examples/examples_test.go).
if ! command -v promtool >/dev/null; then
  echo "test-services: installing promtool (Debian package prometheus)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null || true
fi
if ! command -v promtool >/dev/null; then
  echo "test-services: FAIL: promtool is missing (apt-get install prometheus)" >&2
  exit 1
fi
# Headless Chromium drives the dashboard in internal/dashboard's TestChromium.
if ! command -v chromium >/dev/null; then
  echo "test-services: installing chromium (Debian package chromium)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null || {
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null || true
  }
fi
if ! command -v chromium >/dev/null; then
  echo "test-services: FAIL: chromium is missing (apt-get install chromium)" >&2
  exit 1
fi
echo "test-services: PostgreSQL, Redis, MariaDB, promtool and chromium ready"
