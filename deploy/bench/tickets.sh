#!/bin/sh
# Ticket export first sync, end to end (issue 13): is a first sync linear
# in the export's size? Generates an export of SMALL and of BIG tickets
# (three versions each, deploy/bench/ticketgen), runs `servq run` on each
# under /usr/bin/time -v until the first collection has committed, stops
# it, and records CPU seconds (user + system) and peak RSS; then restarts
# servq on the same store and reads its steady-state RSS (anonymous and
# file-backed) after a second run with nothing new.
#
# One run of 100k tickets lasts about 3 s of CPU, and on a shared machine
# single runs move by ±30 %: a ratio of two single runs is noise. So the
# runs are interleaved in ROUNDS rounds of "small, big, small" (the
# machine's load hits both sizes alike), and the figure is the ratio of
# the medians (MEDIAN big / MEDIAN small, target ≤ 11 for 10× the
# tickets), with the spread of each round's own ratio (its big run over
# the mean of its two small runs) beside it, and the ratio of the least
# runs (other processes only ever add CPU time to a run, so the least
# of each size is the one they disturbed least). CPU seconds are less
# sensitive to other processes than wall time, not immune: a busy sibling
# vCPU slows the caches and the memory bus for both sizes.
#
#   deploy/bench/tickets.sh [SMALL BIG]        (default: 100000 1000000)
#   ROUNDS=5 deploy/bench/tickets.sh           (default 3)
#   IDS=scattered deploy/bench/tickets.sh      (uuid-like ids instead of the
#                                               help desks' sequential numbers)
#   SERVQ=/path/to/servq deploy/bench/tickets.sh   (another build)
#   BEFORE=/path/to/old/servq deploy/bench/tickets.sh
#                                  (each run is also made with that build,
#                                   right after or, in even rounds, right
#                                   before, for before/after ratios from
#                                   the same rounds)
#   MODEL=1 deploy/bench/tickets.sh   (the model's part only: BenchmarkFirstSync
#                                      of collectors/quality, no CSV parsing,
#                                      no restart; BEFORE= a test binary built
#                                      with `go test -c ./collectors/quality/`)
#
# Prints one line per run, then per build the medians and the ratio, with
# the machine's load average at the start and the end.
#
# Needs: go, curl, /usr/bin/time (Debian package "time").
set -eu
gens=ticketgen
. "$(dirname "$0")/lib.sh"
port=${PORT:-19113}
rounds=${ROUNDS:-3}
small=${1:-100000}
big=${2:-1000000}
ids=${IDS:-sequential}
if [ -n "${MODEL:-}" ]; then
	go test -c -o "$work/quality.test" ./collectors/quality/
	after=$work/quality.test
else
	after=$SERVQ
fi

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

# export_dir N: the export of N tickets and its config, generated once.
export_dir() {
	d=$work/n$1
	[ -f "$d/servq.yml" ] && return
	mkdir -p "$d"
	"$work/ticketgen" -tickets "$1" -ids "$ids" -o "$d/tickets.csv"
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
}

# one BUILD NAME N ROUND: a first sync of N tickets by BUILD, on a new
# store; appends "NAME N ROUND CPU" to $work/cpu.txt.
one() {
	bin=$1 name=$2 n=$3 round=$4
	if [ -n "${MODEL:-}" ]; then
		# The flag only for other sizes: a test binary older than it
		# (BEFORE=) has the default sizes only.
		sizes=
		[ "$small $big" = "100000 1000000" ] || sizes=-firstsync.tickets=$n
		cpu=$("$bin" -test.run '^$' -test.bench "FirstSync/ids=$ids/tickets=$n\$" -test.benchtime 1x $sizes |
			awk '{for (i = 2; i <= NF; i++) if ($i == "cpu-s/op") print $(i-1)}')
		[ -n "$cpu" ] || { echo "no cpu-s/op from $bin (a test binary older than -firstsync.tickets knows only 100000 and 1000000)" >&2; exit 1; }
		echo "build=$name ids=$ids tickets=$n round=$round model_cpu_s=$cpu load=$(cut -d' ' -f1 /proc/loadavg)"
		echo "$name $n $round $cpu" >>"$work/cpu.txt"
		return
	fi
	export_dir "$n"
	d=$work/n$n
	rm -rf "$d/data"
	/usr/bin/time -v -o "$d/time.txt" "$bin" run --config.file="$d/servq.yml" --storage.path="$d/data" \
		--web.listen-address=127.0.0.1:$port --log.level=warn 2>"$d/servq.log" &
	pid=$!
	sleep 0.2
	child=$(pgrep -P $pid || echo $pid)
	wait_run "$child"
	kill -TERM "$child"
	wait $pid || true
	first_anon=$peak_anon first_file=$peak_file
	cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$d/time.txt")
	rss=$(peak_rss_mb "$d/time.txt")
	wall=$(awk -F': ' '/Elapsed/ {print $2}' "$d/time.txt")
	store=$(du -m "$d/data/servq.db" | cut -f1)

	# Steady state: a restart on the full store, one run that finds
	# nothing new, then the process's memory as the kernel counts it.
	"$bin" run --config.file="$d/servq.yml" --storage.path="$d/data" \
		--web.listen-address=127.0.0.1:$port --log.level=warn 2>>"$d/servq.log" &
	pid=$!
	wait_run $pid
	sleep 1
	anon=$(awk '/^RssAnon/ {printf "%.0f", $2/1024}' /proc/$pid/status)
	file=$(awk '/^RssFile/ {printf "%.0f", $2/1024}' /proc/$pid/status)
	total=$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' /proc/$pid/status)
	kill -TERM $pid
	wait $pid || true
	echo "build=$name ids=$ids tickets=$n round=$round first_sync_cpu_s=$cpu wall=$wall peak_rss_mb=$rss (sampled peaks: anon=$((first_anon / 1024)) file=$((first_file / 1024))) store_mb=$store steady_rss_mb=$total (anon=$anon file=$file) load=$(cut -d' ' -f1 /proc/loadavg)"
	echo "$name $n $round $cpu" >>"$work/cpu.txt"
}

# both N ROUND: the run of N by this build and by the build before, this
# build first in odd rounds, second in even ones: a run right after a big
# one (its store's writeback, a cooler cache) is not always the same
# build's.
both() {
	if [ -n "${BEFORE:-}" ] && [ $(($2 % 2)) -eq 0 ]; then
		one "$BEFORE" before "$1" "$2"
		one "$after" after "$1" "$2"
		return
	fi
	one "$after" after "$1" "$2"
	if [ -n "${BEFORE:-}" ]; then one "$BEFORE" before "$1" "$2"; fi
}

: >"$work/cpu.txt"
echo "start $(date -u +%FT%TZ) load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
for r in $(seq "$rounds"); do
	both "$small" "$r"
	both "$big" "$r"
	both "$small" "$r"
done
echo "end $(date -u +%FT%TZ) load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians and ratios per build: the ratio of the medians, and the lowest
# and highest of the rounds' own ratios.
for name in after before; do
	grep -q "^$name " "$work/cpu.txt" || continue
	awk -v name="$name" -v small="$small" -v big="$big" '
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	$1 == name && $2 == small { s[++ns] = $4; sum[$3] += $4; cnt[$3]++ }
	$1 == name && $2 == big { b[++nb] = $4; bigr[$3] = $4 }
	END {
		lo = 1e9; hi = 0
		for (r in bigr) if (cnt[r]) { x = bigr[r] / (sum[r] / cnt[r]); if (x < lo) lo = x; if (x > hi) hi = x }
		ms = median(s, ns); mb = median(b, nb)
		printf "%s: %d tickets median %.2f CPU-s (%d runs, least %.2f), %d tickets median %.2f CPU-s (%d runs, least %.2f): ratio of medians %.1fx, of the least %.1fx (rounds %.1fx-%.1fx)\n", name, small, ms, ns, s[1], big, mb, nb, b[1], mb / ms, b[1] / s[1], lo, hi
	}' "$work/cpu.txt"
done
