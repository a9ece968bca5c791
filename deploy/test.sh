#!/usr/bin/env bash
# Runs every servq test — unit, integration and the real-component tests —
# on a fresh Debian/Ubuntu machine with Go. It installs what the tests need
# (Prometheus + promtool, Alertmanager, VictoriaMetrics, PostgreSQL,
# MariaDB, Request Tracker 5 with SQLite, Chromium) when missing; the tests start
# their own instances on 127.0.0.1 with free ports and temporary data.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mariadbd >/dev/null || need+=(mariadb-server)
[ -x /usr/share/request-tracker5/libexec/rt-server ] || need+=(request-tracker5 rt5-db-sqlite)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "installing: ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Real components are required here: a missing binary fails the run
# instead of skipping the tests that use it.
export SERVQ_INTEGRATION=require

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...
