// Package grafana provisions servq's Grafana side through Grafana's HTTP
// API (Grafana 10.0 and later): one folder, the dashboards generated from
// servq's config, and the Grafana-managed alert rules generated from the
// same config, all in that folder and in one rule group of servq's own.
//
// Why over the API and not from files: a Grafana that servq does not run
// (a shared or hosted one) has no provisioning directory servq can write
// to, and the API lets servq check the result at once (a bad dashboard or
// rule is refused with a message, not logged somewhere in Grafana's log).
//
// Provision reads and checks everything before its first write: the
// token's permissions against what the Grafana version needs (the
// alert-rule provisioning API wants Admin on 10.x, Editor from 11.0), the
// rules' data source, dashboards and rules held by file provisioning
// (which Grafana refuses to save through the API), and a rule group that
// holds rules servq did not create. Each fails the run with one message
// saying what to do, and nothing written.
//
// Provision is idempotent: it reads what Grafana holds and writes only what
// differs, so a run with unchanged input makes GET requests only and
// leaves every version number as it was. servq owns what it provisions:
//
//   - the folder is found and created by uid, and its title is kept;
//   - a dashboard is (re)posted when it is missing, outside the folder, or
//     differs from the generated one; an edit made in the UI to a key servq
//     generates is therefore undone by the next run, while keys that only
//     Grafana (or a user) added are left alone;
//   - alert rules are written through the alerting provisioning API, which
//     marks them as provisioned ("api" provenance): the UI shows them as
//     read-only, on purpose, since servq would overwrite any edit anyway.
//     Setting the group's interval writes the whole group and stamps every
//     rule in it, so servq's group must hold servq's rules only; rules of
//     other groups are never read or written. Rules of servq's group whose
//     uid starts with "servq-" but that servq no longer generates are
//     deleted.
//
// Dashboards are written with overwrite=false and the version just read
// (create: no version): Grafana then refuses, with 412, a dashboard saved
// by someone else in between ("version-mismatch") or one whose title is
// taken in the folder by a dashboard with another uid ("name-exists"),
// instead of silently replacing a user's dashboard (up to Grafana 11.2
// titles clash by slug; from 11.3 they need not be unique). Provision reports
// those as errors carrying Grafana's message; a rerun resolves the first.
//
// Failed requests are retried a few times with backoff: 429 always (the
// request was not processed; Retry-After is honoured up to two minutes),
// 5xx and network errors only for GET, PUT and DELETE, which are safe to
// repeat (a repeated POST could meet its own first try, which would be
// refused as a conflict; the next run of Provision picks up from there).
// Every wait ends with ctx. Every other non-2xx answer is an *APIError
// naming the request, the status and Grafana's message (for 401 and 403
// with a hint on the token's permissions). The token goes into the Authorization
// header only, and only towards the configured Grafana host; it is never
// part of an error.
package grafana
