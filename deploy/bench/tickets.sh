#!/bin/sh
# Ticket export first sync, end to end (issue 13): generates an export of N
# tickets (three versions each, deploy/bench/ticketgen), runs `servq run`
# on it under /usr/bin/time -v until the first collection has committed,
# stops it, and prints CPU seconds and peak RSS. Then restarts servq on the
# same store and reports its steady-state RSS (anonymous and file-backed)
# after a second run with nothing new.
#
#   deploy/bench/tickets.sh [tickets ...]      (default: 100000 1000000)
#   SERVQ=/path/to/servq deploy/bench/tickets.sh 100000   (another build)
#   IDS=scattered deploy/bench/tickets.sh      (uuid-like ids instead of the
#                                               help desks' sequential numbers)
#
# Needs: go, curl, /usr/bin/time (Debian package "time").
set -eu
gens=ticketgen
. "$(dirname "$0")/lib.sh"
port=${PORT:-19113}

# wait_run PID: until the collector's first run since this start is over
# (the status API; the run counters appear only after new_series_delay),
# sampling the peaks of PID's anonymous and file-backed resident memory.
wait_run() {
	peak_anon=0 peak_file=0
	while :; do
		if [ -r /proc/$1/status ]; then
			a=$(awk '/^RssAnon/ {print $2}' /proc/$1/status)
			f=$(awk '/^RssFile/ {print $2}' /proc/$1/status)
			[ "${a:-0}" -gt "$peak_anon" ] && peak_anon=$a
			[ "${f:-0}" -gt "$peak_file" ] && peak_file=$f
		fi
		body=$(curl -fsS "http://127.0.0.1:$port/api/v1/collectors" 2>/dev/null || true)
		case $body in
		*'"running":false'*) case $body in *'"last_run":"0001-'*) ;; *) break ;; esac ;;
		esac
		sleep 0.2
	done
	case $body in *'"error":"'*) echo "collector error: $body" >&2 ;; esac
}

for n in ${*:-100000 1000000}; do
	d=$work/n$n
	rm -rf "$d"
	mkdir -p "$d"
	"$work/ticketgen" -tickets "$n" -ids "${IDS:-sequential}" -o "$d/tickets.csv"
	cat >"$d/servq.yml" <<YML
global:
  retention: 3650d
collectors:
  - name: export
    type: tickets_file
    schedule: "@every 1000h"
    timeout: 2h
    path: $d/tickets.csv
    mapping: {id: id, queue: queue, channel: channel, priority: priority, status: status,
      created_at: created_at, first_reply_at: first_reply_at, solved_at: solved_at,
      reopens: reopens, agent_replies: agent_replies}
slos:
  - {name: reply-4h, indicator: ticket_first_reply, threshold: 4h, objective: 90}
  - {name: solve-2d, indicator: ticket_resolution, threshold: 48h, objective: 90}
YML
	/usr/bin/time -v -o "$d/time.txt" "$SERVQ" run --config.file="$d/servq.yml" --storage.path="$d/data" \
		--web.listen-address=127.0.0.1:$port --log.level=warn 2>"$d/servq.log" &
	pid=$!
	sleep 0.2
	child=$(pgrep -P $pid || echo $pid)
	wait_run "$child"
	kill -TERM "$child"
	wait $pid || true
	first_anon=$peak_anon first_file=$peak_file
	cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.1f", u+s}' "$d/time.txt")
	rss=$(peak_rss_mb "$d/time.txt")
	wall=$(awk -F': ' '/Elapsed/ {print $2}' "$d/time.txt")
	store=$(du -m "$d/data/servq.db" | cut -f1)

	# Steady state: a restart on the full store, one run that finds
	# nothing new, then the process's memory as the kernel counts it.
	"$SERVQ" run --config.file="$d/servq.yml" --storage.path="$d/data" \
		--web.listen-address=127.0.0.1:$port --log.level=warn 2>>"$d/servq.log" &
	pid=$!
	wait_run $pid
	sleep 1
	anon=$(awk '/^RssAnon/ {printf "%.0f", $2/1024}' /proc/$pid/status)
	file=$(awk '/^RssFile/ {printf "%.0f", $2/1024}' /proc/$pid/status)
	total=$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' /proc/$pid/status)
	kill -TERM $pid
	wait $pid || true
	echo "ids=${IDS:-sequential} tickets=$n rows=$((3 * n)) first_sync_cpu_s=$cpu wall=$wall peak_rss_mb=$rss (sampled peaks: anon=$((first_anon / 1024)) file=$((first_file / 1024))) store_mb=$store steady_rss_mb=$total (anon=$anon file=$file)"
done
