#!/usr/bin/env bash
# Side by side: PostgreSQL time per poll of servq's `sql` source against
# prometheus-sql-exporter (Debian package prometheus-sql-exporter,
# justwatchcom/sql_exporter) running hand-written aggregates of the same
# numbers servq derives (first reply and resolution histograms by queue,
# channel and priority; the open backlog and its oldest ticket).
#
#   deploy/bench/sql-exporter.sh          # 100k tickets
#   TICKETS=1000000 deploy/bench/sql-exporter.sh
#
# It starts its own PostgreSQL (a temporary data directory, 127.0.0.1, a
# free port; as user nobody when run as root) with pg_stat_statements,
# loads TICKETS tickets spread over 90 days, and runs servq and
# sql_exporter on the same poll interval while a writer changes CHANGES
# tickets per interval (replies, solves), as a busy help desk does. After
# a warm-up (servq's first run reads the last `since: 1h`, nothing of the
# history) pg_stat_statements is reset and each side's execution time is
# summed over WINDOW seconds, per database role (servq, sqlexp; the
# writer's statements are not counted), and divided by its polls. Installs
# postgresql and prometheus-sql-exporter with apt when missing.
# Environment: TICKETS (100000), CHANGES (1000), POLL (10 s), WINDOW (60 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
TICKETS=${TICKETS:-100000}
CHANGES=${CHANGES:-1000}
POLL=${POLL:-10}
WINDOW=${WINDOW:-60}

need=()
command -v prometheus-sql-exporter >/dev/null || need+=(prometheus-sql-exporter)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# PostgreSQL refuses to run as root.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }

mkdir "$tmp/pg"
[ "$(id -u)" -ne 0 ] || chown nobody "$tmp/pg"
as_pg "$pgbin/initdb" -D "$tmp/pg/data" -U bench --auth=trust -E UTF8 --no-locale -N >"$tmp/initdb.log"
port=$(freeport)
as_pg "$pgbin/postgres" -D "$tmp/pg/data" -k "$tmp/pg" -h 127.0.0.1 -p "$port" -F \
	-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top \
	-c shared_buffers=256MB -c TimeZone=UTC >"$tmp/pg/log" 2>&1 &
pids+=($!)
psqlb() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U bench "$@"; }
for _ in $(seq 100); do psqlb -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
psqlb -d postgres -c 'CREATE DATABASE helpdesk'

echo "loading $TICKETS tickets" >&2
psqlb -d helpdesk <<SQL
CREATE EXTENSION pg_stat_statements;
CREATE ROLE servq LOGIN;
CREATE ROLE sqlexp LOGIN;
CREATE TABLE tickets (
	id bigint PRIMARY KEY,
	grp text NOT NULL, via text NOT NULL, priority text NOT NULL, status text NOT NULL,
	created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
	first_reply_at timestamptz, solved_at timestamptz,
	reopens int NOT NULL DEFAULT 0, public_replies int NOT NULL DEFAULT 0);
-- 20 groups x 4 channels x 4 priorities; one in ten open; replies after
-- 0 to 6 h, solves after 1 to 97 h; everything older than a day.
INSERT INTO tickets
SELECT i, 'group' || (i % 20), (ARRAY['email','chat','phone','web'])[1 + i % 4],
	(ARRAY['low','normal','high','urgent'])[1 + (i / 7) % 4],
	CASE WHEN i % 10 = 0 THEN 'open' ELSE 'solved' END,
	c, CASE WHEN i % 10 = 0 THEN c + interval '5 minutes' ELSE c + (1 + i % 97) * interval '1 hour' END,
	CASE WHEN i % 20 = 0 THEN NULL ELSE c + (i % 13) * interval '30 minutes' END,
	CASE WHEN i % 10 = 0 THEN NULL ELSE c + (1 + i % 97) * interval '1 hour' END,
	(i % 31 = 0)::int, 1 + (i % 3)
FROM generate_series(1, $TICKETS) AS i,
	LATERAL (SELECT now() - interval '95 days' + (i::float8 / $TICKETS) * interval '90 days' AS c) AS t;
-- The index an incremental reader needs (servq orders by watermark and id).
CREATE INDEX tickets_updated ON tickets (updated_at, id);
GRANT SELECT ON tickets TO servq, sqlexp;
VACUUM ANALYZE tickets;
SQL

dsn() { echo "postgres://$1@127.0.0.1:$port/helpdesk?sslmode=disable"; }
cat >"$tmp/servq.yml" <<YML
global: {label_limit: 1000, new_series_delay: 0s}
collectors:
  - name: helpdesk-db
    type: sql
    schedule: "@every ${POLL}s"
    driver: postgres
    dsn: "$(dsn servq)"
    record: ticket
    query: |
      SELECT id, grp, via, priority, status, created_at, updated_at, first_reply_at, solved_at, reopens, public_replies
      FROM tickets WHERE updated_at >= {{.watermark}}
    watermark: updated_at
    since: 1h
    mapping: {id: id, created_at: created_at, updated_at: updated_at, queue: grp, channel: via, priority: priority,
      status: status, first_reply_at: first_reply_at, solved_at: solved_at, reopens: reopens, agent_replies: public_replies}
slos:
  - {name: first-reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: resolution-3d, indicator: ticket_resolution, threshold: 72h, objective: 90}
YML

# The same numbers as hand-written aggregates, the sql_exporter way: each
# poll recomputes them over the whole table.
buckets() { # $1: the end column
	local out="" b
	for b in 300 900 3600 14400 28800 86400 259200 604800; do
		out="$out count(*) FILTER (WHERE $1 - created_at <= interval '$b seconds')::float8 AS le_$b,"
	done
	echo "$out count(*)::float8 AS count, coalesce(sum(extract(epoch FROM $1 - created_at)), 0)::float8 AS sum"
}
values() { echo "[le_300, le_900, le_3600, le_14400, le_28800, le_86400, le_259200, le_604800, count, sum]"; }
cat >"$tmp/sql_exporter.yml" <<YML
jobs:
  - name: helpdesk
    interval: '${POLL}s'
    connections: ['$(dsn sqlexp)']
    queries:
      - name: ticket_first_reply_seconds
        help: First reply times by queue, channel and priority (cumulative buckets).
        labels: [grp, via, priority]
        values: $(values)
        query: |
          SELECT grp, via, priority, $(buckets first_reply_at)
          FROM tickets WHERE first_reply_at IS NOT NULL GROUP BY grp, via, priority
      - name: ticket_resolution_seconds
        help: Resolution times by queue, channel and priority (cumulative buckets).
        labels: [grp, via, priority]
        values: $(values)
        query: |
          SELECT grp, via, priority, $(buckets solved_at)
          FROM tickets WHERE solved_at IS NOT NULL GROUP BY grp, via, priority
      - name: tickets_open
        help: Open tickets and the creation time of the oldest, by queue, channel, priority and status.
        labels: [grp, via, priority, status]
        values: [open, oldest]
        query: |
          SELECT grp, via, priority, status, count(*)::float8 AS open, extract(epoch FROM min(created_at))::float8 AS oldest
          FROM tickets WHERE solved_at IS NULL GROUP BY grp, via, priority, status
YML

go build -o "$tmp/servq" ./cmd/servq
"$tmp/servq" check --config.file="$tmp/servq.yml" >/dev/null
sport=$(freeport)
eport=$(freeport)
"$tmp/servq" --config.file="$tmp/servq.yml" --storage.path="$tmp/servq-data" \
	--web.listen-address="127.0.0.1:$sport" --log.level=warn 2>"$tmp/servq.log" &
pids+=($!)
prometheus-sql-exporter -config.file="$tmp/sql_exporter.yml" -web.listen-address="127.0.0.1:$eport" >"$tmp/sql_exporter.log" 2>&1 &
pids+=($!)

# The help desk at work: CHANGES tickets replied to or solved per poll.
(
	while sleep "$POLL"; do
		psqlb -d helpdesk -c "UPDATE tickets SET updated_at = now(),
			first_reply_at = coalesce(first_reply_at, now()),
			solved_at = CASE WHEN random() < 0.5 THEN coalesce(solved_at, now()) ELSE solved_at END,
			status = CASE WHEN random() < 0.5 THEN 'solved' ELSE status END,
			public_replies = public_replies + 1
			WHERE id IN (SELECT 1 + (random() * ($TICKETS - 1))::bigint FROM generate_series(1, $CHANGES))" >/dev/null
	done
) &
pids+=($!)

runs() { # successful servq runs so far
	curl -fs "http://127.0.0.1:$sport/metrics" |
		awk '/^servq_collector_runs_total\{.*collector="helpdesk-db".*result="success"/ {s += $2} END {print s + 0}'
}
sleep $((2 * POLL + 5))
r0=$(runs)
psqlb -d helpdesk -c 'SELECT pg_stat_statements_reset()' >/dev/null
echo "measuring for ${WINDOW}s" >&2
sleep "$WINDOW"
r1=$(runs)
psqlb -d helpdesk -At -F ' ' -c "
	SELECT r.rolname, sum(s.calls), round(sum(s.total_exec_time)::numeric, 2),
		max(s.calls) FILTER (WHERE s.query LIKE '%solved_at IS NULL%')
	FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
	WHERE r.rolname IN ('servq', 'sqlexp') GROUP BY r.rolname ORDER BY 1" >"$tmp/stats"
servq_runs=$((r1 - r0))
awk -v n="$TICKETS" -v sr="$servq_runs" -v w="$WINDOW" -v c="$CHANGES" '
	$1 == "servq" { polls = sr } $1 == "sqlexp" { polls = $4 }
	{ per[$1] = $3 / polls; printf "%-7s tickets=%d changes/poll=%d window=%ss polls=%d statements=%d pg_ms=%s pg_ms_per_poll=%.2f\n", $1, n, c, w, polls, $2, $3, per[$1] }
	END { if (per["servq"] > 0) printf "ratio sqlexp/servq per poll: %.1fx\n", per["sqlexp"] / per["servq"] }' "$tmp/stats"
if ! grep -q servq "$tmp/stats"; then
	echo "servq ran no query; its log:" >&2
	cat "$tmp/servq.log" >&2
	exit 1
fi
