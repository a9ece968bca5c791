package sources

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/quality"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/deploy/testenv"
)

// The sql source is tested against real servers the test starts itself:
// PostgreSQL (Debian package postgresql) and MariaDB (mariadb-server), each
// in a temporary data directory, on 127.0.0.1 with a free port and its
// socket in that directory. PostgreSQL refuses to run as root: when the
// test runs as root, initdb and postgres run as user nobody (the data
// directory is handed to nobody); mariadbd drops to nobody itself with
// --user. A missing server skips the tests, or fails them when
// SERVQ_INTEGRATION=require, as deploy/testenv does.

const sqlPassword = "Pa55-w0rd-s3cr3t"

// sqlServer is one started database server.
type sqlServer struct {
	driver  string // postgres or mysql
	dir     string
	port    int
	start   func() error
	cmd     *exec.Cmd
	logFile string
	admin   *sql.DB
	// types maps the placeholders of the test DDL to column types.
	types *strings.Replacer
}

// sqlFreePort reserves a port for the database server (see testenv.FreeAddr).
func sqlFreePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(testenv.FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// sqlDataDir is a directory the database user can own: a fresh one
// under the system temp dir (t.TempDir's parent is private to root).
func sqlDataDir(t *testing.T) (dir string, uid, gid int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "servq-sql-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, gid = os.Getuid(), os.Getgid()
	if uid == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root needs user nobody for the database server: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir, uid, gid
}

func sqlCommand(dir string, uid, gid int, log string, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if os.Getuid() == 0 && uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd
}

func startPostgres(t *testing.T) *sqlServer {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin/"
	initdb := findProgram(t, "postgresql", bin+"initdb", "initdb")
	bin = filepath.Dir(initdb) + "/"
	dir, uid, gid := sqlDataDir(t)
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(sqlPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(pw, uid, gid)
	s := &sqlServer{driver: "postgres", dir: dir, port: sqlFreePort(t), logFile: filepath.Join(dir, "server.log"),
		types: strings.NewReplacer("{TS}", "timestamp(6)", "{TSTZ}", "timestamptz", "{TEXT}", "text", "{INT}", "bigint")}
	// TCP connections need the password (scram); the socket is trusted.
	cmd := sqlCommand(dir, uid, gid, s.logFile, bin+"initdb", "-D", filepath.Join(dir, "data"), "-U", "servq",
		"--pwfile", pw, "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-locale", "-N")
	if err := cmd.Run(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, s.log())
	}
	s.start = func() error {
		s.cmd = sqlCommand(dir, uid, gid, s.logFile, bin+"postgres", "-D", filepath.Join(dir, "data"), "-k", dir,
			"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-F", "-c", "TimeZone=UTC")
		return s.cmd.Start()
	}
	s.run(t, "postgres://servq:"+sqlPassword+"@127.0.0.1:"+strconv.Itoa(s.port)+"/postgres?sslmode=disable&timezone=UTC")
	s.exec(t, "CREATE DATABASE helpdesk")
	s.admin.Close()
	s.admin = s.open(t, "postgres://servq:"+sqlPassword+"@127.0.0.1:"+strconv.Itoa(s.port)+"/helpdesk?sslmode=disable&timezone=UTC")
	return s
}

func startMariaDB(t *testing.T) *sqlServer {
	t.Helper()
	mariadbd := findProgram(t, "mariadb-server", "mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
	install := findProgram(t, "mariadb-server", "mariadb-install-db", "mysql_install_db")
	dir, uid, _ := sqlDataDir(t)
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		t.Fatal(err)
	}
	s := &sqlServer{driver: "mysql", dir: dir, port: sqlFreePort(t), logFile: filepath.Join(dir, "server.log"),
		types: strings.NewReplacer("{TS}", "DATETIME(6)", "{TSTZ}", "TIMESTAMP(6) NULL", "{TEXT}", "VARCHAR(64)", "{INT}", "BIGINT")}
	data := filepath.Join(dir, "data")
	cmd := sqlCommand(dir, 0, 0, s.logFile, install, "--no-defaults", "--datadir="+data, "--user="+u.Username,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	cmd.SysProcAttr = nil // mariadb-install-db drops privileges itself
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, s.log())
	}
	s.start = func() error {
		s.cmd = sqlCommand(dir, 0, 0, s.logFile, mariadbd, "--no-defaults", "--datadir="+data,
			"--socket="+filepath.Join(dir, "my.sock"), "--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1",
			"--user="+u.Username, "--pid-file="+filepath.Join(dir, "my.pid"), "--innodb-flush-log-at-trx-commit=2",
			"--skip-name-resolve")
		s.cmd.SysProcAttr = nil
		return s.cmd.Start()
	}
	// root has no password on the socket; servq gets one over TCP.
	s.run(t, "root@unix("+filepath.Join(dir, "my.sock")+")/?time_zone=%27%2B00%3A00%27")
	s.exec(t, "CREATE DATABASE helpdesk")
	s.exec(t, "CREATE USER 'servq'@'127.0.0.1' IDENTIFIED BY '"+sqlPassword+"'")
	s.exec(t, "GRANT ALL ON helpdesk.* TO 'servq'@'127.0.0.1'")
	s.admin.Exec("USE helpdesk")
	s.admin.Close()
	s.admin = s.open(t, "root@unix("+filepath.Join(dir, "my.sock")+")/helpdesk?time_zone=%27%2B00%3A00%27")
	return s
}

func (s *sqlServer) log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

func (s *sqlServer) open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	if s.driver == "mysql" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logger = sqlNopLogger{} // the crash test breaks its connection on purpose
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db = sql.OpenDB(conn)
	} else {
		var err error
		if db, err = sql.Open("pgx", dsn); err != nil {
			t.Fatal(err)
		}
	}
	db.SetMaxOpenConns(1)
	return db
}

// run starts the server, waits until it answers and stops it at cleanup.
func (s *sqlServer) run(t *testing.T, adminDSN string) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("starting %s: %v", s.driver, err)
	}
	t.Cleanup(func() { s.stop(syscall.SIGTERM) })
	if s.admin == nil {
		s.admin = s.open(t, adminDSN)
		t.Cleanup(func() { s.admin.Close() })
	}
	s.waitReady(t)
}

func (s *sqlServer) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.admin.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", s.driver, err, s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the server with sig and waits for it: SIGQUIT is PostgreSQL's
// immediate shutdown (no checkpoint, crash recovery at the next start),
// SIGKILL a crash of MariaDB.
func (s *sqlServer) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// crash kills the server as abruptly as it allows.
func (s *sqlServer) crash() {
	if s.driver == "postgres" {
		s.stop(syscall.SIGQUIT)
	} else {
		s.stop(syscall.SIGKILL)
	}
}

func (s *sqlServer) restart(t *testing.T) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t)
}

func (s *sqlServer) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := s.admin.Exec(s.types.Replace(q)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// dsnFile writes the DSN of user servq to a file (dsn_file).
func (s *sqlServer) dsnFile(t *testing.T, password string) string {
	t.Helper()
	dsn := fmt.Sprintf("postgres://servq:%s@127.0.0.1:%d/helpdesk?sslmode=disable", password, s.port)
	if s.driver == "mysql" {
		dsn = fmt.Sprintf("servq:%s@tcp(127.0.0.1:%d)/helpdesk", password, s.port)
	}
	f := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(f, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// sqlHarness is one collector config with its quality model.
type sqlHarness struct {
	t   *testing.T
	cfg *config.Config
	src *sqlSource
	m   *quality.Model
}

func newSQLHarness(t *testing.T, yml string) *sqlHarness {
	t.Helper()
	cfg := testConfig(t, yml)
	src := buildCollector(t, cfg, collectors.Env{}).(*sqlSource)
	t.Cleanup(func() { src.Close() })
	return &sqlHarness{t: t, cfg: cfg, src: src, m: testModel(t, cfg)}
}

// run collects from the committed cursor at now and commits.
func (h *sqlHarness) run(now time.Time) *collectors.Batch {
	h.t.Helper()
	b, err := h.try(now)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *sqlHarness) try(now time.Time) (*collectors.Batch, error) {
	name := h.cfg.Collectors[0].Name
	cur, err := h.m.Cursor(name)
	if err != nil {
		return nil, err
	}
	b, next, err := tryCollect(h.src, cur, now)
	if err != nil {
		return b, err
	}
	commitRun(h.t, h.m, name, b, next)
	return b, nil
}

func (h *sqlHarness) cursor() sqlCursor {
	raw, _ := h.m.Cursor(h.cfg.Collectors[0].Name)
	var c sqlCursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			h.t.Fatal(err)
		}
	}
	return c
}

// sqlNow is the clock of the tests: Monday 2026-11-02 12:00 UTC (13:00 in
// Berlin, UTC+1 in November).
var sqlNow = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)

func sqlZ(hhmm string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", "2026-11-02 "+hhmm)
	if err != nil {
		panic(err)
	}
	return t
}

// The tickets table of a help desk: times are wall clocks in
// Europe/Berlin without zone (PostgreSQL timestamp, MySQL DATETIME), and
// the legacy schema keeps the reopen count as text.
const sqlTicketsDDL = `CREATE TABLE tickets (
	id {TEXT} PRIMARY KEY, grp {TEXT}, chan {TEXT}, prio {TEXT}, status {TEXT},
	created {TS}, first_reply {TS}, solved {TS}, updated_at {TS} NOT NULL,
	reopens {TEXT}, replies {INT}, breaches {TEXT})`

// The first rows (Berlin wall clock; UTC is one hour earlier):
//
//	T1 support/email: created 09:00, replied 09:30, solved 10:00 (one reply) -> created, solved, FCR,
//	   first reply 1800 s, resolution 3600 s; updated 10:00
//	T2 support/chat:  created 09:10, replied 10:10, open; updated 10:10
//	T3 sales/email:   created 09:20, new; updated 10:10 (the same second as T2)
//	T4 sales/email:   reopens "two" -> rejected (bad_number); updated 10:20
//	T5 sales/web:     no created time -> rejected (bad_time); updated 10:30
//	T9 support/email: updated 2026-09-01, before the 30 days the first run reads
var sqlTicketRows = []string{
	`INSERT INTO tickets VALUES ('T1','support','email','high','Solved','2026-11-02 09:00:00','2026-11-02 09:30:00','2026-11-02 10:00:00','2026-11-02 10:00:00','0',1,NULL)`,
	`INSERT INTO tickets VALUES ('T2','support','chat','normal','open','2026-11-02 09:10:00','2026-11-02 10:10:00',NULL,'2026-11-02 10:10:00.250000','0',1,'first_reply')`,
	`INSERT INTO tickets VALUES ('T3','sales','email','normal','new','2026-11-02 09:20:00',NULL,NULL,'2026-11-02 10:10:00.250000',NULL,0,NULL)`,
	`INSERT INTO tickets VALUES ('T4','sales','email','normal','open','2026-11-02 09:25:00',NULL,NULL,'2026-11-02 10:20:00','two',0,NULL)`,
	`INSERT INTO tickets VALUES ('T5','sales','web','normal','open',NULL,NULL,NULL,'2026-11-02 10:30:00','0',0,NULL)`,
	`INSERT INTO tickets VALUES ('T9','support','email','normal','open','2026-08-30 09:00:00',NULL,NULL,'2026-09-01 10:00:00','0',0,NULL)`,
}

func sqlTicketsYAML(s *sqlServer, dsnFile string, extra string) string {
	return fmt.Sprintf(`collectors:
  - name: helpdesk
    type: sql
    schedule: "@every 5m"
    driver: %s
    dsn_file: %s
    record: ticket
    query: |
      SELECT id, grp, chan, prio, status, created, first_reply, solved, updated_at, reopens, replies, breaches
      FROM tickets WHERE updated_at >= {{.watermark}}
    watermark: updated_at
    batch_size: 2
    time_zone: Europe/Berlin
    status_map: {solved: solved}
    mapping: {id: id, queue: grp, channel: chan, priority: prio, status: status, created_at: created,
      first_reply_at: first_reply, solved_at: solved, updated_at: updated_at, reopens: reopens,
      agent_replies: replies, sla_breaches: breaches}
%s`, s.driver, dsnFile, extra)
}

func TestSQLPostgres(t *testing.T) { sqlSuite(t, startPostgres(t)) }
func TestSQLMariaDB(t *testing.T)  { sqlSuite(t, startMariaDB(t)) }

func sqlSuite(t *testing.T, s *sqlServer) {
	var mu sync.Mutex // the subtests share the server: one at a time
	sub := func(name string, f func(t *testing.T, s *sqlServer)) {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			defer mu.Unlock()
			s.exec(t, "DROP TABLE IF EXISTS tickets", "DROP TABLE IF EXISTS calls")
			f(t, s)
		})
	}
	sub("Tickets", sqlTestTickets)
	sub("CrashMidRun", sqlTestCrashMidRun)
	sub("QueryFails", sqlTestQueryFails)
	sub("Budget", sqlTestBudget)
	sub("Calls", sqlTestCalls)
	sub("Surveys", sqlTestSurveys)
	sub("AuthFailure", sqlTestAuthFailure)
	sub("SettleLag", sqlTestSettleLag)
	sub("Chunks", sqlTestChunks)
}

// A run of several pages flushes a chunk at each page boundary once the
// batch is full; resumed from any chunk it reads exactly the rest.
func sqlTestChunks(t *testing.T, s *sqlServer) {
	s.exec(t, sqlTicketsDDL)
	s.exec(t, sqlTicketRows...)
	h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, sqlPassword), ""))
	checkChunks(t, h.src, sqlNow, 1, 2)
}

// A replica (or a long transaction) makes L1 (updated 10:00:00 UTC)
// visible after L2 (10:00:10). Without a settle lag the first run reads
// L2, the watermark passes 10:00:00 and L1 is never read; with
// settle_lag: 1m the first run reads nothing (complete up to 09:59:30)
// and the second both.
func sqlTestSettleLag(t *testing.T, s *sqlServer) {
	row := func(id, updated string) string {
		return `INSERT INTO tickets VALUES ('` + id + `','support','email','normal','open','2026-11-02 10:59:00',NULL,NULL,'2026-11-02 ` + updated + `','0',0,NULL)`
	}
	for _, tc := range []struct{ extra, want string }{
		{"    settle_lag: 0s\n", "L2|"},
		{"    settle_lag: 1m\n", "|L1,L2"},
	} {
		s.exec(t, "DROP TABLE IF EXISTS tickets", sqlTicketsDDL)
		s.exec(t, row("L2", "11:00:10")) // Berlin wall clock: 10:00:10 UTC
		h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, sqlPassword), tc.extra))
		var got []string
		for i, now := range []time.Time{time.Date(2026, 11, 2, 10, 0, 30, 0, time.UTC), time.Date(2026, 11, 2, 10, 2, 0, 0, time.UTC)} {
			if i == 1 {
				s.exec(t, row("L1", "11:00:00")) // visible late
			}
			b := h.run(now)
			if i == 0 && tc.extra == "    settle_lag: 1m\n" && !b.Watermark.Equal(now.Add(-time.Minute)) {
				t.Errorf("watermark %s, want %s", b.Watermark, now.Add(-time.Minute))
			}
			var ids []string
			for _, tk := range b.Tickets {
				ids = append(ids, tk.ID)
			}
			got = append(got, strings.Join(ids, ","))
		}
		if strings.Join(got, "|") != tc.want {
			t.Errorf("%q: tickets per run %q, want %q", tc.extra, strings.Join(got, "|"), tc.want)
		}
	}
}

// Survey answers of several instruments in one table; the kind comes
// from a column, the survey name from the config. Scores outside the
// kind's scale are rejected as survey_csv does.
func sqlTestSurveys(t *testing.T, s *sqlServer) {
	s.exec(t, "DROP TABLE IF EXISTS answers")
	s.exec(t, `CREATE TABLE answers (id {INT} PRIMARY KEY, instrument {TEXT}, rating {TEXT}, answered {TSTZ}, team {TEXT})`)
	s.exec(t,
		`INSERT INTO answers VALUES (1,'CSAT','5','2026-11-02 09:00:00','support')`,
		`INSERT INTO answers VALUES (2,'nps','9','2026-11-02 09:01:00','support')`,
		`INSERT INTO answers VALUES (3,'csat','7','2026-11-02 09:02:00','support')`,
		`INSERT INTO answers VALUES (4,'nps','3','2026-11-02 09:03:00','sales')`,
	)
	yml := fmt.Sprintf(`collectors:
  - name: surveys
    type: sql
    schedule: "@hourly"
    driver: %s
    dsn_file: %s
    record: survey
    survey: post-contact
    query: SELECT * FROM answers WHERE answered >= {{.watermark}}
    watermark: answered
    mapping: {id: id, kind: instrument, score: rating, submitted_at: answered, queue: team}
`, s.driver, s.dsnFile(t, sqlPassword))
	h := newSQLHarness(t, yml)
	b := h.run(sqlNow)
	if len(b.Surveys) != 3 || len(b.Rejected) != 1 || b.Rejected[0].Reason != "bad_score" {
		t.Fatalf("surveys %+v rejected %+v", b.Surveys, b.Rejected)
	}
	r := b.Surveys[0]
	if r.ID != "1" || r.Kind != record.KindCSAT || r.Score != 5 || !r.HasScore || r.Survey != "post-contact" ||
		r.Queue != "support" || !r.SubmittedAt.Equal(sqlZ("09:00")) {
		t.Errorf("first response %+v", r)
	}
	if v := seriesSum(t, h.m, "servq_survey_responses_total", nil); v != 3 {
		t.Errorf("responses = %g, want 3", v)
	}
	if v := seriesSum(t, h.m, "servq_nps_responses_total", map[string]string{"category": "promoter"}); v != 1 {
		t.Errorf("promoters = %g, want 1", v)
	}
	if v := seriesSum(t, h.m, "servq_nps_responses_total", map[string]string{"category": "detractor"}); v != 1 {
		t.Errorf("detractors = %g, want 1", v)
	}
	if !b.Watermark.Equal(sqlNow) {
		t.Errorf("complete run: watermark %s, want %s", b.Watermark, sqlNow)
	}
	// A column with zone: a run that stops early is complete up to the
	// instant of the last row it read (answers 1 and 2 in a batch of 2).
	h = newSQLHarness(t, yml+"    batch_size: 2\n    max_queries_per_run: 1\n")
	if b = h.run(sqlNow); len(b.Surveys) != 2 || !b.Watermark.Equal(sqlZ("09:01")) {
		t.Errorf("stopped run: %d responses, watermark %s; want 2 and %s", len(b.Surveys), b.Watermark, sqlZ("09:01"))
	}
}

// Mapping, the quality model's totals, and an incremental second run
// with a row that shares the watermark value of the first run's last row.
func sqlTestTickets(t *testing.T, s *sqlServer) {
	s.exec(t, sqlTicketsDDL)
	s.exec(t, sqlTicketRows...)
	h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, sqlPassword), ""))

	b := h.run(sqlNow)
	// The last query came back short: every row there was at the start.
	if !b.Watermark.Equal(sqlNow) {
		t.Errorf("complete run: watermark %s, want %s", b.Watermark, sqlNow)
	}
	var ids []string
	got := map[string]record.Ticket{}
	for _, tk := range b.Tickets {
		ids = append(ids, tk.ID)
		got[tk.ID] = tk
	}
	// Ordered by updated_at then id; T2 and T3 share 10:10:00.25 and are
	// split across pages 1 and 2 (batch_size 2).
	if strings.Join(ids, ",") != "T1,T2,T3" {
		t.Fatalf("tickets %v, want T1,T2,T3", ids)
	}
	t1 := got["T1"]
	if t1.Queue != "support" || t1.Channel != "email" || t1.Priority != "high" || t1.Status != "solved" ||
		!t1.CreatedAt.Equal(sqlZ("08:00")) || !t1.FirstReplyAt.Equal(sqlZ("08:30")) || !t1.SolvedAt.Equal(sqlZ("09:00")) ||
		!t1.UpdatedAt.Equal(sqlZ("09:00")) || t1.AgentReplies != 1 || t1.Reopens != 0 {
		t.Errorf("T1 = %+v", t1)
	}
	t2 := got["T2"]
	if !t2.UpdatedAt.Equal(sqlZ("09:10").Add(250*time.Millisecond)) || !t2.SolvedAt.IsZero() ||
		len(t2.SLABreaches) != 1 || t2.SLABreaches[0] != "first_reply" {
		t.Errorf("T2 = %+v", t2)
	}
	if got["T3"].Status != "new" || !got["T3"].FirstReplyAt.IsZero() {
		t.Errorf("T3 = %+v", got["T3"])
	}
	reasons := map[string]string{}
	for _, r := range b.Rejected {
		reasons[r.Reason] = r.Position + ": " + r.Err.Error()
	}
	if len(b.Rejected) != 2 || !strings.Contains(reasons["bad_number"], "(id T4)") || !strings.Contains(reasons["bad_time"], "(id T5)") {
		t.Errorf("rejections %v, want T4 bad_number and T5 bad_time", reasons)
	}
	// The cursor holds the column's own value: a wall clock for a column
	// without zone.
	if c := h.cursor(); c.Watermark != "2026-11-02T10:30:00Z" || strings.Join(c.Seen, ",") != "T5" {
		t.Errorf("cursor %+v, want 10:30 and T5 (rejected, but read)", c)
	}
	all := map[string]string{"collector": "helpdesk"}
	sup := map[string]string{"queue": "support"}
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if v := seriesSum(t, h.m, name, labels); v != want {
			t.Errorf("%s%v = %g, want %g", name, labels, v, want)
		}
	}
	check("servq_tickets_created_total", all, 3)
	check("servq_tickets_created_total", sup, 2)
	check("servq_tickets_solved_total", all, 1)
	check("servq_tickets_solved_first_contact_total", all, 1)
	check("servq_ticket_first_reply_seconds", all, 2) // T1 1800 s, T2 3600 s
	if v := histogramSum(t, h.m, "servq_ticket_first_reply_seconds", all); v != 5400 {
		t.Errorf("first reply sum = %g, want 1800+3600", v)
	}
	if v := histogramSum(t, h.m, "servq_ticket_resolution_seconds", all); v != 3600 {
		t.Errorf("resolution sum = %g, want 3600", v)
	}
	check("servq_ticket_sla_breaches_total", all, 1)
	check("servq_tickets_open", map[string]string{"status": "new"}, 1)

	// Between runs: T0 appears with the same updated_at as the committed
	// watermark (a late commit; its id sorts before T5, so a keyset on
	// (updated_at, id) would lose it); T2 is solved; T6 is new; T3 and T1
	// are unchanged and must not come again.
	s.exec(t,
		`INSERT INTO tickets VALUES ('T0','sales','web','low','new','2026-11-02 10:29:00',NULL,NULL,'2026-11-02 10:30:00','0',0,NULL)`,
		`UPDATE tickets SET status='solved', solved='2026-11-02 11:10:00', updated_at='2026-11-02 11:10:00' WHERE id='T2'`,
		`INSERT INTO tickets VALUES ('T6','support','email','normal','open','2026-11-02 11:00:00','2026-11-02 11:05:00',NULL,'2026-11-02 11:10:00','0',1,NULL)`,
	)
	b = h.run(sqlNow.Add(10 * time.Minute))
	if !b.Watermark.Equal(sqlNow.Add(10 * time.Minute)) {
		t.Errorf("second run: watermark %s, want %s", b.Watermark, sqlNow.Add(10*time.Minute))
	}
	ids = nil
	for _, tk := range b.Tickets {
		ids = append(ids, tk.ID)
	}
	if strings.Join(ids, ",") != "T0,T2,T6" || len(b.Rejected) != 0 {
		t.Fatalf("second run: tickets %v rejected %v, want T0,T2,T6 and none", ids, b.Rejected)
	}
	check("servq_tickets_created_total", all, 5)
	check("servq_tickets_solved_total", all, 2)
	check("servq_tickets_solved_first_contact_total", all, 2) // T2: one reply
	check("servq_ticket_first_reply_seconds", all, 3)         // T1, T2 once, T6
	if v := histogramSum(t, h.m, "servq_ticket_resolution_seconds", all); v != 3600+7200 {
		t.Errorf("resolution sum = %g, want 3600 + 7200 (T2 09:10 -> 11:10)", v)
	}
	if c := h.cursor(); c.Watermark != "2026-11-02T11:10:00Z" || strings.Join(c.Seen, ",") != "T2,T6" {
		t.Errorf("cursor %+v", c)
	}
	// Nothing changed: nothing read, the cursor stays.
	b = h.run(sqlNow.Add(20 * time.Minute))
	if b.Len() != 0 || len(b.Rejected) != 0 {
		t.Errorf("third run read %d records", b.Len())
	}
	if c := h.cursor(); c.Watermark != "2026-11-02T11:10:00Z" || len(c.Seen) != 2 {
		t.Errorf("cursor moved: %+v", c)
	}
}

// The database dies after the first page: the run fails and commits
// nothing; after a restart, the rerun from the old cursor gives exactly
// the totals of an undisturbed run.
func sqlTestCrashMidRun(t *testing.T, s *sqlServer) {
	s.exec(t, sqlTicketsDDL)
	s.exec(t, sqlTicketRows...)
	h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, sqlPassword), ""))
	h.src.afterPage = func(page int) {
		if page == 1 {
			s.crash()
		}
	}
	_, err := h.try(sqlNow)
	if err == nil {
		t.Fatal("the run went on after the database died")
	}
	if strings.Contains(err.Error(), sqlPassword) {
		t.Errorf("error shows the password: %v", err)
	}
	t.Logf("error after the crash: %v", err)
	if c, _ := h.m.Cursor("helpdesk"); c != nil {
		t.Errorf("cursor committed after a failed run: %s", c)
	}
	if v := seriesSum(t, h.m, "servq_tickets_created_total", nil); v != 0 {
		t.Errorf("tickets counted from a failed run: %g", v)
	}
	h.src.afterPage = nil
	s.restart(t)
	b := h.run(sqlNow)
	if len(b.Tickets) != 3 {
		t.Errorf("rerun read %d tickets, want 3", len(b.Tickets))
	}
	if v := seriesSum(t, h.m, "servq_tickets_created_total", nil); v != 3 {
		t.Errorf("created = %g, want 3", v)
	}
	if v := seriesSum(t, h.m, "servq_tickets_solved_total", nil); v != 1 {
		t.Errorf("solved = %g, want 1", v)
	}
	if v := seriesSum(t, h.m, "servq_ticket_first_reply_seconds", nil); v != 2 {
		t.Errorf("first replies = %g, want 2", v)
	}
}

// A query that fails (a column renamed under it) fails the run and moves
// nothing; once fixed, the next run continues from the committed cursor.
func sqlTestQueryFails(t *testing.T, s *sqlServer) {
	s.exec(t, sqlTicketsDDL)
	s.exec(t, sqlTicketRows[:2]...)
	h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, sqlPassword), ""))
	h.run(sqlNow)
	before := h.cursor()
	s.exec(t, sqlTicketRows[2], "ALTER TABLE tickets RENAME COLUMN grp TO team")
	if _, err := h.try(sqlNow); err == nil || !strings.Contains(err.Error(), "grp") {
		t.Fatalf("err = %v, want the database's complaint about grp", err)
	} else {
		t.Logf("query error: %v", err)
	}
	if c := h.cursor(); c.Watermark != before.Watermark || strings.Join(c.Seen, ",") != strings.Join(before.Seen, ",") {
		t.Errorf("cursor moved after a failed run: %+v -> %+v", before, c)
	}
	s.exec(t, "ALTER TABLE tickets RENAME COLUMN team TO grp")
	b := h.run(sqlNow)
	if len(b.Tickets) != 1 || b.Tickets[0].ID != "T3" {
		t.Errorf("after the fix: %+v, want T3 only", b.Tickets)
	}
	if v := seriesSum(t, h.m, "servq_tickets_created_total", nil); v != 3 {
		t.Errorf("created = %g, want 3", v)
	}
}

// max_queries_per_run ends a run early with what it read committed; the
// next runs continue, and the totals are those of one long run. A run
// that stops early is complete up to the last watermark value it read (a
// wall clock of time_zone here), a run whose last query came back short
// up to its start.
func sqlTestBudget(t *testing.T, s *sqlServer) {
	s.exec(t, sqlTicketsDDL)
	s.exec(t, sqlTicketRows...)
	h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, sqlPassword), "    max_queries_per_run: 1\n"))
	var runs [][]string
	// Berlin 10:10:00.25 (T2), 10:20 (T4), then short pages.
	marks := []time.Time{sqlZ("09:10").Add(250 * time.Millisecond), sqlZ("09:20"), sqlNow.Add(2 * time.Minute), sqlNow.Add(3 * time.Minute)}
	for i := 0; i < 4; i++ {
		b := h.run(sqlNow.Add(time.Duration(i) * time.Minute))
		if !b.Watermark.Equal(marks[i]) {
			t.Errorf("run %d: watermark %s, want %s", i+1, b.Watermark, marks[i])
		}
		var ids []string
		for _, tk := range b.Tickets {
			ids = append(ids, tk.ID)
		}
		for _, r := range b.Rejected {
			ids = append(ids, "rejected:"+r.Reason)
		}
		runs = append(runs, ids)
	}
	// Pages of two rows: T1 T2 | T3 T4(rejected) | T5(rejected) | nothing.
	want := "[[T1 T2] [T3 rejected:bad_number] [rejected:bad_time] []]"
	if fmt.Sprint(runs) != want {
		t.Errorf("runs %v, want %s", runs, want)
	}
	if v := seriesSum(t, h.m, "servq_tickets_created_total", nil); v != 3 {
		t.Errorf("created = %g, want 3", v)
	}
}

// Calls from a PBX table with an integer watermark (an auto-increment
// sequence), timestamps with zone and the PBX's own dispositions.
func sqlTestCalls(t *testing.T, s *sqlServer) {
	s.exec(t, `CREATE TABLE calls (seq {INT} PRIMARY KEY, uniqueid {TEXT}, queue {TEXT}, entered {TSTZ},
		connected {TSTZ}, hungup {TSTZ}, holdtime {INT}, billsec {TEXT}, disposition {TEXT})`)
	// Hand-computed: C1 answered after 20 s, talk 100 s (billsec);
	// C2 NO ANSWER -> abandoned after 45 s (wait from hungup - entered);
	// C3 disposition BUSY is unknown -> rejected; C4 wait -5 -> rejected.
	s.exec(t,
		`INSERT INTO calls VALUES (1,'1730540000.1','support','2026-11-02 09:00:00','2026-11-02 09:00:20','2026-11-02 09:02:00',20,'100','ANSWERED')`,
		`INSERT INTO calls VALUES (2,'1730540000.2','support','2026-11-02 09:05:00',NULL,'2026-11-02 09:05:45',NULL,'0','NO ANSWER')`,
		`INSERT INTO calls VALUES (3,'1730540000.3','sales','2026-11-02 09:06:00',NULL,'2026-11-02 09:06:10',NULL,'0','BUSY')`,
		`INSERT INTO calls VALUES (4,'1730540000.4','sales','2026-11-02 09:07:00',NULL,'2026-11-02 09:07:10',-5,'0','NO ANSWER')`,
	)
	yml := fmt.Sprintf(`collectors:
  - name: pbx
    type: sql
    schedule: "@every 1m"
    driver: %s
    dsn_file: %s
    record: call
    query: "SELECT seq, uniqueid, queue, entered, connected, hungup, holdtime, billsec, disposition FROM calls WHERE seq > {{.watermark}}"
    watermark: seq
    watermark_type: integer
    batch_size: 3
    outcome_map: {ANSWERED: answered, NO ANSWER: abandoned}
    mapping: {id: uniqueid, queue: queue, enqueued_at: entered, answered_at: connected, ended_at: hungup,
      wait_seconds: holdtime, talk_seconds: billsec, outcome: disposition}
`, s.driver, s.dsnFile(t, sqlPassword))
	h := newSQLHarness(t, yml)
	b := h.run(sqlNow)
	if len(b.Calls) != 2 || len(b.Rejected) != 2 {
		t.Fatalf("calls %+v rejected %+v", b.Calls, b.Rejected)
	}
	c1, c2 := b.Calls[0], b.Calls[1]
	if c1.ID != "1730540000.1" || c1.Outcome != record.OutcomeAnswered || c1.Wait != 20*time.Second || c1.Talk != 100*time.Second ||
		!c1.EnqueuedAt.Equal(sqlZ("09:00")) || !c1.AnsweredAt.Equal(sqlZ("09:00").Add(20*time.Second)) {
		t.Errorf("C1 = %+v", c1)
	}
	if c2.Outcome != record.OutcomeAbandoned || c2.Wait != 45*time.Second || !c2.EndedAt.Equal(sqlZ("09:05").Add(45*time.Second)) {
		t.Errorf("C2 = %+v", c2)
	}
	if b.Rejected[0].Reason != "bad_value" || b.Rejected[1].Reason != "bad_number" {
		t.Errorf("rejections %+v", b.Rejected)
	}
	if c := h.cursor(); c.Watermark != "4" || strings.Join(c.Seen, ",") != "1730540000.4" {
		t.Errorf("cursor %+v", c)
	}
	s.exec(t, `INSERT INTO calls VALUES (5,'1730540000.5','support','2026-11-02 09:10:00','2026-11-02 09:10:05','2026-11-02 09:11:05',5,'60','ANSWERED')`)
	b = h.run(sqlNow)
	if len(b.Calls) != 1 || b.Calls[0].ID != "1730540000.5" {
		t.Errorf("second run %+v", b.Calls)
	}
	for name, want := range map[string]float64{"servq_calls_offered_total": 3, "servq_calls_answered_total": 2, "servq_calls_abandoned_total": 1} {
		if v := seriesSum(t, h.m, name, map[string]string{"queue": "support"}); v != want {
			t.Errorf("%s = %g, want %g", name, v, want)
		}
	}
	if v := histogramSum(t, h.m, "servq_call_wait_seconds", map[string]string{"outcome": "answered"}); v != 25 {
		t.Errorf("answered wait sum = %g, want 20+5", v)
	}
	// An integer watermark tells no time: a run that stops early claims
	// nothing; one that read everything, its start.
	h = newSQLHarness(t, yml+"    max_queries_per_run: 1\n")
	if b = h.run(sqlNow); len(b.Calls)+len(b.Rejected) != 3 || !b.Watermark.Equal(time.Unix(0, 0)) {
		t.Errorf("stopped run: %d records, watermark %s; want 3 and none", len(b.Calls)+len(b.Rejected), b.Watermark)
	}
	if b = h.run(sqlNow.Add(time.Minute)); !b.Watermark.Equal(sqlNow.Add(time.Minute)) {
		t.Errorf("complete run: watermark %s, want its start", b.Watermark)
	}
	// Seconds out of bounds: 7 days and 1 s, one that would overflow
	// time.Duration (to about -2.5e9 s), NaN. Each row is rejected, none
	// is counted.
	s.exec(t,
		`INSERT INTO calls VALUES (6,'1730540000.6','support','2026-11-02 09:12:00','2026-11-02 09:12:05','2026-11-02 09:13:05',5,'604801','ANSWERED')`,
		`INSERT INTO calls VALUES (7,'1730540000.7','support','2026-11-02 09:14:00','2026-11-02 09:14:05','2026-11-02 09:15:05',5,'99999999999999999','ANSWERED')`,
		`INSERT INTO calls VALUES (8,'1730540000.8','support','2026-11-02 09:16:00','2026-11-02 09:16:05','2026-11-02 09:17:05',5,'NaN','ANSWERED')`,
	)
	b = h.run(sqlNow.Add(2 * time.Minute))
	if len(b.Calls) != 0 || len(b.Rejected) != 3 {
		t.Errorf("out of bounds: calls %+v, rejected %+v", b.Calls, b.Rejected)
	}
	for _, r := range b.Rejected {
		if r.Reason != "bad_number" || !strings.Contains(r.Err.Error(), "from 0 to 604800") {
			t.Errorf("rejection %s %v, want bad_number naming the bound", r.Reason, r.Err)
		}
	}
}

// A wrong password: the error names the failure, never the password or
// the DSN.
func sqlTestAuthFailure(t *testing.T, s *sqlServer) {
	s.exec(t, sqlTicketsDDL)
	wrong := "Wr0ng-" + sqlPassword
	h := newSQLHarness(t, sqlTicketsYAML(s, s.dsnFile(t, wrong), ""))
	_, err := h.try(sqlNow)
	if err == nil {
		t.Fatal("no error with a wrong password")
	}
	msg := err.Error()
	if strings.Contains(msg, wrong) || strings.Contains(msg, sqlPassword) || strings.Contains(msg, "tcp(127.0.0.1") {
		t.Errorf("error shows the secret: %s", msg)
	}
	if !strings.Contains(msg, "password authentication failed") && !strings.Contains(msg, "Access denied") {
		t.Errorf("error does not say what failed: %s", msg)
	}
	t.Logf("auth error: %s", msg)
}

// Config errors are located at file:line and never show the DSN.
func TestSQLSpecErrors(t *testing.T) {
	base := `collectors:
  - name: db
    type: sql
    schedule: "@hourly"
`
	ok := "    driver: postgres\n    dsn: postgres://u:Hunter2-pw@db/x\n    record: ticket\n    watermark: updated_at\n    mapping: {id: id, created_at: created}\n"
	noMapping := strings.Replace(ok, "    mapping: {id: id, created_at: created}\n", "", 1)
	for _, c := range []struct{ spec, want string }{
		{ok + "    query: SELECT * FROM t\n", "test.yml:10: collectors[0].query: must contain {{.watermark}}"},
		{strings.Replace(ok, "postgres\n", "oracle\n", 1) + "    query: SELECT * FROM t WHERE u >= {{.watermark}}\n", `driver: must be postgres or mysql`},
		{strings.Replace(ok, "record: ticket", "record: chat", 1) + "    query: x {{.watermark}}\n", `record: must be ticket, call or survey`},
		{noMapping + "    query: x {{.watermark}}\n    mapping: {id: id, created_at: c, solved: s}\n", `test.yml:10: collectors[0].mapping.solved: unknown ticket field "solved"`},
		{noMapping + "    query: x {{.watermark}}\n", `mapping.id is required`},
		{strings.Replace(ok, "postgres://u:Hunter2-pw@db/x", "'postgres://u:Hunter2-pw@db:notaport/x'", 1) + "    query: x {{.watermark}}\n", `dsn: is not a PostgreSQL connection string`},
		{ok + "    query: x {{.watermark}}\n    watermark_type: uuid\n", `watermark_type: must be time or integer`},
		{ok + "    query: x {{.watermark}}\n    batch_size: -1\n", `batch_size: must be between 1 and 100000`},
		{ok + "    query: x {{.watermark}}\n    time_zone: Mars/Olympus\n", `unknown time zone`},
		{ok + "    query: x {{.watermark}}\n    outcome_map: {X: answered}\n", `outcome_map: is for record: call`},
		{ok + "    query: x {{.watermark}}\n    password: x\n", `password`},
		{ok + "    query: x {{.watermark}}\n    watermark_type: integer\n    settle_lag: 1m\n", `settle_lag: needs watermark_type: time`},
	} {
		expectConfigError(t, base, c.spec, c.want, "Hunter2")
	}
}

// The wrapping statement binds the watermark where the user's query says
// and excludes the ids already read at it.
func TestSQLStatement(t *testing.T) {
	for _, drv := range []string{"postgres", "mysql"} {
		dsn := "postgres://u@db/x"
		if drv == "mysql" {
			dsn = "u@tcp(db:3306)/x"
		}
		src, err := buildSourceErr(fmt.Sprintf(`collectors:
  - name: db
    type: sql
    schedule: "@hourly"
    driver: %s
    dsn: %s
    record: ticket
    query: "SELECT * FROM t WHERE a >= {{.watermark}} OR b >= {{.watermark}};"
    watermark: updated_at
    batch_size: 50
    mapping: {id: key, created_at: created}
`, drv, dsn))
		if err != nil {
			t.Fatal(err)
		}
		s := src.(*sqlSource)
		st := &sqlState{t: sqlNow, seen: map[string]bool{}}
		st.add("7")
		q, args := s.statement(st)
		t.Logf("%s:\n%s", drv, q)
		if drv == "postgres" {
			if !strings.Contains(q, "a >= $1 OR b >= $1") || !strings.Contains(q, `LIMIT 50`) || len(args) != 2 ||
				!strings.Contains(q, `ORDER BY q."updated_at", q."key"`) {
				t.Errorf("%s %v", q, args)
			}
		} else if !strings.Contains(q, "a >= ? OR b >= ?") || len(args) != 5 || args[4] != `["7"]` ||
			!strings.Contains(q, "ORDER BY q.`updated_at`, q.`key`") {
			t.Errorf("%s %v", q, args)
		}
		if strings.HasSuffix(strings.TrimSpace(strings.Split(q, "\n")[1]), ";") {
			t.Errorf("the trailing semicolon stayed: %s", q)
		}
	}
}
