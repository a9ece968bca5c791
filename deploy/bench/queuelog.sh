#!/bin/sh
# Asterisk queue_log first run, end to end (issue 13): generates a realistic
# log of N lines (deploy/bench/qlgen: 8 queues, 60 agents, calls overlapping,
# ring attempts; answered, transferred, abandoned and timed-out calls), runs
# `servq run` on it with the default max_read_bytes (0: the whole log in one
# run) under /usr/bin/time -v until the first collection has committed,
# checks the counted calls against the generator's hand count, and prints
# CPU seconds, lines per CPU-second and peak RSS. In the same run it times
# the baseline, a minimal Go reader that only cuts each line at '|'
# (qlgen -split), before and after servq, and prints servq's CPU time as a
# multiple of the baseline's: on a shared machine the ratio is the figure
# to compare.
#
#   deploy/bench/queuelog.sh [lines ...]      (default: 5000000)
#   SERVQ=/path/to/servq deploy/bench/queuelog.sh 5000000   (another build)
#
# Needs: go, curl, /usr/bin/time (Debian package "time").
set -eu
gens=qlgen
. "$(dirname "$0")/lib.sh"
port=${PORT:-19114}

# wait_run: until the collector's first run since this start is over.
wait_run() {
	while :; do
		body=$(curl -fsS "http://127.0.0.1:$port/api/v1/collectors" 2>/dev/null || true)
		case $body in
		*'"running":false'*) case $body in *'"last_run":"0001-'*) ;; *) break ;; esac ;;
		esac
		sleep 0.5
	done
	case $body in *'"error":"'*) echo "collector error: $body" >&2 ;; esac
}

# cpu FILE: user + system seconds from a /usr/bin/time -v report.
cpu() { awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$1"; }

# offered: the sum of servq_calls_offered_total as served.
offered() {
	curl -fsS "http://127.0.0.1:$port/metrics" |
		awk '/^servq_calls_offered_total\{/ {s += $2} END {printf "%.0f", s}'
}

for n in ${*:-5000000}; do
	d=$work/n$n
	rm -rf "$d"
	mkdir -p "$d"
	"$work/qlgen" -lines "$n" -o "$d/queue_log" 2>"$d/count.txt"
	lines=$(sed 's/.*lines=\([0-9]*\).*/\1/' "$d/count.txt")
	calls=$(sed 's/.*calls=\([0-9]*\).*/\1/' "$d/count.txt")
	cat >"$d/servq.yml" <<YML
global:
  retention: 3650d
  new_series_delay: 0s
collectors:
  - name: pbx
    type: asterisk_queue_log
    schedule: "@every 1000h"
    timeout: 2h
    path: $d/queue_log
YML
	cat "$d/queue_log" >/dev/null # the same page cache for both readers
	/usr/bin/time -v -o "$d/split1.txt" "$work/qlgen" -split "$d/queue_log" >/dev/null
	/usr/bin/time -v -o "$d/time.txt" "$SERVQ" run --config.file="$d/servq.yml" --storage.path="$d/data" \
		--web.listen-address=127.0.0.1:$port --log.level=warn 2>"$d/servq.log" &
	pid=$!
	wait_run
	got=$(offered)
	kill -TERM $(pgrep -P $pid servq) 2>/dev/null || kill -TERM $pid
	wait $pid || true
	/usr/bin/time -v -o "$d/split2.txt" "$work/qlgen" -split "$d/queue_log" >/dev/null
	[ "$got" = "$calls" ] || echo "MISMATCH: servq counted $got calls, the log has $calls" >&2
	c=$(cpu "$d/time.txt")
	s1=$(cpu "$d/split1.txt")
	s2=$(cpu "$d/split2.txt")
	rss=$(peak_rss_mb "$d/time.txt")
	wall=$(awk -F': ' '/Elapsed/ {print $2}' "$d/time.txt")
	awk -v n="$lines" -v c="$c" -v s1="$s1" -v s2="$s2" -v rss="$rss" -v wall="$wall" -v calls="$got" 'BEGIN {
		s = (s1 + s2) / 2
		printf "lines=%d calls=%d servq_cpu_s=%.2f wall=%s lines_per_cpu_s=%.0f peak_rss_mb=%d splitter_cpu_s=%.2f (%.2f, %.2f) x_splitter=%.1f\n",
			n, calls, c, wall, n / c, rss, s, s1, s2, (s > 0 ? c / s : 0)
	}'
done
