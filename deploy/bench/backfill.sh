#!/bin/sh
# Backfill memory, end to end (issue 14): generates an export of N tickets
# (three versions each, deploy/bench/ticketgen, a ticket every 30 s), runs
# `servq backfill` over the whole export to an OpenMetrics file under
# /usr/bin/time -v, and prints events, CPU seconds and peak RSS. The
# range grows with N (200k tickets span 70 days), so STEP (default 1h)
# keeps the output small; the replay's memory should not grow with N.
#
#   deploy/bench/backfill.sh [tickets ...]     (default: 20000 200000)
#   SERVQ=/path/to/servq deploy/bench/backfill.sh 20000   (another build)
#
# Needs: go, /usr/bin/time (Debian package "time").
set -eu
gens=ticketgen
. "$(dirname "$0")/lib.sh"
for n in ${*:-20000 200000}; do
	d=$work/n$n
	rm -rf "$d"
	mkdir -p "$d"
	"$work/ticketgen" -tickets "$n" -o "$d/tickets.csv"
	# ticketgen starts at 2025-11-01 and creates a ticket every 30 s; the
	# last is solved at most ~2.5 days after it is created.
	days=$((n * 30 / 86400 + 4))
	to=$(date -u -d "2025-11-01 + $days days" +%Y-%m-%dT%H:%M:%SZ)
	touch -d "$to" "$d/tickets.csv"
	cat >"$d/servq.yml" <<YML
global:
  time_zone: UTC
collectors:
  - name: export
    type: tickets_file
    schedule: "@every 1000h"
    path: $d/tickets.csv
    mapping: {id: id, queue: queue, channel: channel, priority: priority, status: status,
      created_at: created_at, first_reply_at: first_reply_at, solved_at: solved_at,
      reopens: reopens, agent_replies: agent_replies}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: solve-2d, indicator: ticket_resolution, threshold: 48h, objective: 90}
YML
	/usr/bin/time -v -o "$d/time.txt" "$SERVQ" backfill --config.file="$d/servq.yml" --storage.path="$d/data" \
		--from=2025-11-01 --to="$to" --step="${STEP:-1h}" -o "$d/history.om" 2>"$d/backfill.log"
	cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.1f", u+s}' "$d/time.txt")
	rss=$(peak_rss_mb "$d/time.txt")
	wall=$(awk -F': ' '/Elapsed/ {print $2}' "$d/time.txt")
	summary=$(tail -n 1 "$d/backfill.log")
	om=$(du -m "$d/history.om" | cut -f1)
	echo "tickets=$n days=$days cpu_s=$cpu wall=$wall peak_rss_mb=$rss om_mb=$om ($summary)"
	rm -f "$d/history.om"
done
