package sources

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
	"github.com/servq/servq/internal/redact"
)

// sqlSource reads tickets, calls or survey responses straight from the
// database of a help desk or PBX (PostgreSQL, MySQL, MariaDB) with the
// user's SELECT. The query is read incrementally by a watermark column
// (updated_at, an id): servq wraps it as
//
//	SELECT q.*, CAST(q.<id> AS text) AS servq_id FROM (<query>) AS q
//	WHERE q.<wm> > :w OR (q.<wm> = :w AND servq_id NOT IN :seen)
//	ORDER BY q.<wm>, q.<id> LIMIT <batch_size>
//
// where {{.watermark}} in the user's query is bound to the same :w (so the
// database can use its index on the watermark column), and :seen are the
// ids already read at exactly the watermark value. The cursor keeps :w and
// :seen, so rows sharing a timestamp are neither lost nor read twice, also
// when more of them than batch_size share it.
type sqlSource struct {
	spec      sqlSpec
	db        *sql.DB
	secrets   []string // the DSN and its password: never shown
	timeWM    bool     // the watermark is a time (else an integer)
	times     timeParser
	loc       *time.Location
	zoneless  map[string]bool // database type names of columns without zone
	tickets   *ticketsFile    // ticket mapping shared with tickets_file
	surveys   map[record.SurveyKind]*surveyCSV
	fields    map[string]bool
	maxPages  int
	timeout   time.Duration
	settle    time.Duration  // settle_lag
	afterPage func(page int) // test hook: called after each complete page
}

type sqlSpec struct {
	Driver        string            `yaml:"driver"`
	DSN           config.Secret     `yaml:"dsn"`
	DSNFile       string            `yaml:"dsn_file"`
	Record        string            `yaml:"record"`
	Query         string            `yaml:"query"`
	Watermark     string            `yaml:"watermark"`
	WatermarkType string            `yaml:"watermark_type"`
	Mapping       map[string]string `yaml:"mapping"`
	BatchSize     int               `yaml:"batch_size"`
	MaxQueries    int               `yaml:"max_queries_per_run"`
	QueryTimeout  config.Duration   `yaml:"query_timeout"`
	Since         config.Duration   `yaml:"since"`
	TimeZone      string            `yaml:"time_zone"`
	TimeFormat    string            `yaml:"time_format"`
	StatusMap     map[string]string `yaml:"status_map"`
	OutcomeMap    map[string]string `yaml:"outcome_map"`
	Survey        string            `yaml:"survey"`
	Kind          string            `yaml:"kind"`
	// SettleLag: only rows whose (time) watermark is at least this old
	// are read (default 0). A replica applies changes late, and a
	// transaction that set updated_at before committing appears after
	// rows with later values: the watermark would pass either for good.
	SettleLag *config.Duration `yaml:"settle_lag"`
}

// sqlPlaceholder marks where the user's query compares with the watermark.
const sqlPlaceholder = "{{.watermark}}"

// Defaults of the sql source.
const (
	sqlDefaultBatch      = 1000
	sqlDefaultMaxQueries = 100
	sqlDefaultTimeout    = 60 * time.Second
)

// The record fields a mapping can name, per record kind.
var (
	sqlTicketFields = func() map[string]bool {
		m := map[string]bool{"sla_breaches": true, "deleted": true}
		for k := range ticketFields {
			m[k] = true
		}
		return m
	}()
	sqlCallFields = map[string]bool{"id": true, "queue": true, "agent": true, "channel": true, "enqueued_at": true,
		"answered_at": true, "ended_at": true, "wait_seconds": true, "talk_seconds": true, "hold_seconds": true,
		"wrap_seconds": true, "outcome": true}
	sqlSurveyFields = map[string]bool{"id": true, "survey": true, "kind": true, "score": true, "submitted_at": true,
		"queue": true, "channel": true, "ticket_id": true}
	sqlTimeFields = map[string]bool{"created_at": true, "updated_at": true, "first_reply_at": true, "solved_at": true,
		"enqueued_at": true, "answered_at": true, "ended_at": true, "submitted_at": true}
)

func init() {
	collectors.Register("sql", newSQLSource)
}

func newSQLSource(c *config.Collector, _ collectors.Env) (collectors.Source, error) {
	s := &sqlSource{}
	if err := c.DecodeSpec(&s.spec); err != nil {
		return nil, err
	}
	sp := &s.spec
	dsn, err := resolveSecret(c, "dsn", sp.DSN, sp.DSNFile)
	if err != nil {
		return nil, err
	}
	if dsn == "" {
		return nil, c.Errorf("dsn", "is required (or dsn_file), e.g. postgres://servq@db/helpdesk or servq:PASSWORD@tcp(db:3306)/helpdesk")
	}
	switch sp.Record {
	case "ticket":
		s.fields = sqlTicketFields
	case "call":
		s.fields = sqlCallFields
	case "survey":
		s.fields = sqlSurveyFields
	default:
		return nil, c.Errorf("record", "must be ticket, call or survey, not %q", sp.Record)
	}
	q := strings.TrimRight(strings.TrimSpace(sp.Query), "; \t\r\n")
	switch {
	case q == "":
		return nil, c.Errorf("query", "is required: a SELECT with %s where it compares the watermark column, e.g. WHERE updated_at >= %s", sqlPlaceholder, sqlPlaceholder)
	case !strings.Contains(q, sqlPlaceholder):
		return nil, c.Errorf("query", "must contain %s where it compares the watermark column (e.g. WHERE t.updated_at >= %s), so that the database reads only what changed", sqlPlaceholder, sqlPlaceholder)
	}
	sp.Query = q
	if sp.Watermark == "" {
		return nil, c.Errorf("watermark", "is required: the result column that grows with every change (updated_at, or an increasing id)")
	}
	switch sp.WatermarkType {
	case "", "time":
		s.timeWM = true
	case "integer":
	default:
		return nil, c.Errorf("watermark_type", "must be time or integer, not %q", sp.WatermarkType)
	}
	if s.settle, err = settleLag(c, sp.SettleLag, 0); err != nil {
		return nil, err
	}
	if s.settle > 0 && !s.timeWM {
		return nil, c.Errorf("settle_lag", "needs watermark_type: time (an integer watermark says nothing about age)")
	}
	for _, k := range sortedKeys(sp.Mapping) {
		if !s.fields[k] {
			return nil, c.Errorf("mapping."+k, "unknown %s field %q (known: %s)", sp.Record, k, strings.Join(sortedKeys(s.fields), ", "))
		}
		if sp.Mapping[k] == "" {
			return nil, c.Errorf("mapping."+k, "names no column")
		}
	}
	if sp.Mapping["id"] == "" {
		return nil, c.Errorf("mapping", "mapping.id is required")
	}
	if len(sp.StatusMap) > 0 && sp.Record != "ticket" {
		return nil, c.Errorf("status_map", "is for record: ticket")
	}
	if len(sp.OutcomeMap) > 0 && sp.Record != "call" {
		return nil, c.Errorf("outcome_map", "is for record: call")
	}
	if (sp.Survey != "" || sp.Kind != "") && sp.Record != "survey" {
		return nil, c.Errorf("survey", "survey and kind are for record: survey")
	}
	switch sp.Record {
	case "ticket":
		if sp.Mapping["created_at"] == "" {
			return nil, c.Errorf("mapping", "mapping.created_at is required for tickets")
		}
	case "call":
		if sp.Mapping["enqueued_at"] == "" {
			return nil, c.Errorf("mapping", "mapping.enqueued_at is required for calls")
		}
		for _, k := range sortedKeys(sp.OutcomeMap) {
			if !validOutcome(sp.OutcomeMap[k]) {
				return nil, c.Errorf("outcome_map."+k, "%q is not an outcome (answered, abandoned, timeout, transferred, voicemail)", sp.OutcomeMap[k])
			}
		}
	case "survey":
		if sp.Mapping["submitted_at"] == "" || sp.Mapping["score"] == "" {
			return nil, c.Errorf("mapping", "mapping.submitted_at and mapping.score are required for surveys")
		}
		if sp.Survey == "" && sp.Mapping["survey"] == "" {
			return nil, c.Errorf("survey", "is required (the survey label, e.g. post-contact) unless mapping.survey names a column")
		}
		if sp.Kind == "" && sp.Mapping["kind"] == "" {
			return nil, c.Errorf("kind", "is required (csat, nps, ces) unless mapping.kind names a column")
		}
		if k := record.SurveyKind(sp.Kind); sp.Kind != "" && (k == record.KindSERVQUAL || surveyScales[k] == [2]float64{}) {
			return nil, c.Errorf("kind", "must be csat, nps or ces, not %q (SERVQUAL exports: use survey_csv)", sp.Kind)
		}
	}
	if sp.BatchSize == 0 {
		sp.BatchSize = sqlDefaultBatch
	}
	if sp.BatchSize < 1 || sp.BatchSize > 100000 {
		return nil, c.Errorf("batch_size", "must be between 1 and 100000")
	}
	s.maxPages = sp.MaxQueries
	if s.maxPages == 0 {
		s.maxPages = sqlDefaultMaxQueries
	}
	if s.maxPages < 0 {
		return nil, c.Errorf("max_queries_per_run", "must not be negative")
	}
	s.timeout = sp.QueryTimeout.D()
	if s.timeout == 0 {
		s.timeout = sqlDefaultTimeout
	}
	if s.timeout < 0 {
		return nil, c.Errorf("query_timeout", "must not be negative")
	}
	if sp.Since < 0 {
		return nil, c.Errorf("since", "must not be negative")
	}
	if sp.Since != 0 && !s.timeWM {
		return nil, c.Errorf("since", "applies to time watermarks only (an integer watermark reads everything on its first run)")
	}
	if s.times, err = newTimeParser(sp.TimeFormat, sp.TimeZone); err != nil {
		return nil, c.Errorf("time_zone", "%v", err)
	}
	s.loc = s.times.loc
	s.secrets = []string{dsn.Reveal()}
	switch sp.Driver {
	case "postgres", "postgresql", "pgx":
		cfg, err := pgx.ParseConfig(dsn.Reveal())
		if err != nil {
			return nil, c.Errorf("dsn", "is not a PostgreSQL connection string or URL (the value is not shown)")
		}
		s.secrets = append(s.secrets, cfg.Password)
		redact.Add(cfg.Password) // wherever servq prints, not only in driver errors
		s.db = stdlib.OpenDB(*cfg)
		s.zoneless = map[string]bool{"TIMESTAMP": true, "DATE": true}
		sp.Driver = "postgres"
	case "mysql", "mariadb":
		cfg, err := mysql.ParseDSN(dsn.Reveal())
		if err != nil {
			return nil, c.Errorf("dsn", "is not a MySQL DSN of the form user:password@tcp(host:3306)/dbname (the value is not shown)")
		}
		s.secrets = append(s.secrets, cfg.Passwd)
		redact.Add(cfg.Passwd)
		// Times come back as time.Time; TIMESTAMP columns (stored as
		// instants) in UTC; DATETIME columns are wall clocks read in
		// time_zone.
		cfg.ParseTime, cfg.Loc = true, time.UTC
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
		cfg.Logger = sqlNopLogger{}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, c.Errorf("dsn", "is not usable (the value is not shown)")
		}
		s.db = sql.OpenDB(conn)
		s.zoneless = map[string]bool{"DATETIME": true, "DATE": true}
		sp.Driver = "mysql"
	case "":
		return nil, c.Errorf("driver", "is required: postgres or mysql (also for MariaDB)")
	default:
		return nil, c.Errorf("driver", "must be postgres or mysql (also for MariaDB), not %q", sp.Driver)
	}
	// One connection is plenty for one collector; it is closed when idle
	// so that a collector running every few minutes holds none between runs.
	s.db.SetMaxOpenConns(1)
	s.db.SetConnMaxIdleTime(time.Minute)
	switch sp.Record {
	case "ticket":
		s.tickets = &ticketsFile{mapping: sp.Mapping, statusMap: sp.StatusMap}
		s.tickets.times, _ = newTimeParser("rfc3339", "")
	case "survey":
		s.surveys = map[record.SurveyKind]*surveyCSV{}
	}
	return s, nil
}

type sqlNopLogger struct{}

func (sqlNopLogger) Print(...any) {}

func validOutcome(o string) bool {
	switch record.CallOutcome(o) {
	case record.OutcomeAnswered, record.OutcomeAbandoned, record.OutcomeTimeout, record.OutcomeTransferred, record.OutcomeVoicemail:
		return true
	}
	return false
}

// Close releases the connection pool.
func (s *sqlSource) Close() error { return s.db.Close() }

// sqlCursor is the committed position: the last watermark value read (RFC
// 3339 in UTC, or an integer) and the ids already read at exactly it.
type sqlCursor struct {
	Watermark string   `json:"watermark"`
	Seen      []string `json:"seen,omitempty"`
}

// sqlState is the position during a run, with the watermark typed for
// binding.
type sqlState struct {
	t    time.Time
	n    int64
	seen map[string]bool
	list []string
	// at is the instant of t as read in this run (a column without zone
	// holds a wall clock of time_zone): how far a run that stops early has
	// delivered.
	at time.Time
	// cutoff is the newest instant a row may have to be read in this run
	// (zero: no settle lag); unsettled is set at the first newer row.
	cutoff    time.Time
	unsettled bool
}

func (s *sqlSource) loadCursor(raw []byte, now time.Time) (*sqlState, error) {
	st := &sqlState{seen: map[string]bool{}}
	if len(raw) == 0 {
		if s.timeWM {
			since := s.spec.Since.D()
			if since == 0 {
				since = defaultSince
			}
			st.t = s.bindTime(now.Add(-since))
		} else {
			st.n = math.MinInt64
		}
		return st, nil
	}
	var c sqlCursor
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("bad cursor: %w", err)
	}
	var err error
	if s.timeWM {
		st.t, err = time.Parse(time.RFC3339Nano, c.Watermark)
	} else {
		st.n, err = strconv.ParseInt(c.Watermark, 10, 64)
	}
	if err != nil {
		return nil, fmt.Errorf("bad cursor: watermark %q does not match watermark_type", c.Watermark)
	}
	for _, id := range c.Seen {
		st.add(id)
	}
	return st, nil
}

func (st *sqlState) add(id string) {
	if !st.seen[id] {
		st.seen[id] = true
		st.list = append(st.list, id)
	}
}

func (s *sqlSource) encodeCursor(st *sqlState) ([]byte, error) {
	c := sqlCursor{Seen: st.list}
	if s.timeWM {
		c.Watermark = st.t.UTC().Format(time.RFC3339Nano)
	} else {
		c.Watermark = strconv.FormatInt(st.n, 10)
	}
	return json.Marshal(c)
}

// bindTime turns an instant into the value compared with the watermark
// column on the first run. PostgreSQL's driver compares a timestamp
// without zone by the value's wall clock and a timestamptz by its instant,
// so the instant in time_zone fits both; MySQL's driver sends the wall
// clock in UTC (the session zone servq sets), so a DATETIME column, read
// in time_zone, needs the wall clock of time_zone.
func (s *sqlSource) bindTime(t time.Time) time.Time {
	t = t.In(s.loc)
	if s.spec.Driver == "mysql" {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	return t
}

func (s *sqlSource) quote(name string) string {
	if s.spec.Driver == "mysql" {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// statement builds the query of one page and its arguments.
func (s *sqlSource) statement(st *sqlState) (string, []any) {
	var wm any = st.n
	if s.timeWM {
		wm = st.t
	}
	wmCol, idCol := "q."+s.quote(s.spec.Watermark), "q."+s.quote(s.spec.Mapping["id"])
	var b strings.Builder
	var args []any
	if s.spec.Driver == "postgres" {
		inner := strings.ReplaceAll(s.spec.Query, sqlPlaceholder, "$1")
		id := "COALESCE(CAST(" + idCol + " AS text), '')"
		fmt.Fprintf(&b, "SELECT q.*, %s AS servq_id FROM (\n%s\n) AS q\nWHERE %s > $1 OR (%s = $1 AND NOT (%s = ANY($2)))\nORDER BY %s, %s LIMIT %d",
			id, inner, wmCol, wmCol, id, wmCol, idCol, s.spec.BatchSize)
		seen := st.list
		if seen == nil {
			seen = []string{}
		}
		return b.String(), []any{wm, seen}
	}
	n := strings.Count(s.spec.Query, sqlPlaceholder)
	inner := strings.ReplaceAll(s.spec.Query, sqlPlaceholder, "?")
	for range n {
		args = append(args, wm)
	}
	id := "COALESCE(CAST(" + idCol + " AS CHAR), '')"
	seen := []byte("[]")
	if len(st.list) > 0 {
		seen, _ = json.Marshal(st.list)
	}
	fmt.Fprintf(&b, "SELECT q.*, %s AS servq_id FROM (\n%s\n) AS q\nWHERE %s > ? OR (%s = ? AND JSON_CONTAINS(?, JSON_QUOTE(%s)) = 0)", id, inner, wmCol, wmCol, id)
	args = append(args, wm, wm, string(seen))
	fmt.Fprintf(&b, "\nORDER BY %s, %s LIMIT %d", wmCol, idCol, s.spec.BatchSize)
	return b.String(), args
}

// sanitize removes the DSN and its password from a driver's error.
func (s *sqlSource) sanitize(err error) error {
	msg := err.Error()
	for _, sec := range s.secrets {
		if len(sec) >= 3 {
			msg = strings.ReplaceAll(msg, sec, "<secret>")
		}
	}
	return errors.New(msg)
}

func (s *sqlSource) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	st, err := s.loadCursor(raw, b.Now)
	if err != nil {
		return nil, err
	}
	// The completeness watermark: a run whose last query returned less
	// than a batch read every row there was when it began (b.Now), as a
	// row changed earlier carries a watermark value past the cursor. A run
	// that stops at max_queries_per_run has every change before the last
	// watermark value it read (rows come in that order; more rows of that
	// very value may follow). An integer watermark says nothing about
	// time, so such a run claims nothing.
	b.Watermark = b.Now
	if s.settle > 0 {
		// Rows newer than cutoff wait for a later run (settle_lag); a
		// run that reaches one, or the end, is complete up to cutoff.
		st.cutoff = b.Now.Add(-s.settle)
		b.Watermark = st.cutoff
	}
	for page := 1; ; page++ {
		if page > s.maxPages {
			// Budget reached: commit what was read, continue next run.
			b.Watermark = time.Unix(0, 0)
			if !st.at.IsZero() {
				b.Watermark = st.at
			}
			break
		}
		n, err := s.page(ctx, st, page, b)
		if err != nil {
			return nil, err
		}
		if s.afterPage != nil {
			s.afterPage(page)
		}
		if n < s.spec.BatchSize || st.unsettled {
			break
		}
		if b.Full() {
			// A chunk ends at a page: the cursor after it resumes there.
			c, err := s.encodeCursor(st)
			if err != nil {
				return nil, err
			}
			if err := b.Flush(ctx, c); err != nil {
				return nil, err
			}
		}
	}
	return s.encodeCursor(st)
}

// page reads one page, advances st and returns the number of rows read.
func (s *sqlSource) page(ctx context.Context, st *sqlState, page int, b *collectors.Batch) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	q, args := s.statement(st)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("sql query (page %d): %w", page, s.sanitize(err))
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return 0, fmt.Errorf("sql query (page %d): %w", page, s.sanitize(err))
	}
	index := map[string]int{}
	for i, ct := range types {
		if _, dup := index[ct.Name()]; !dup {
			index[ct.Name()] = i
		}
	}
	wmIdx, ok := index[s.spec.Watermark]
	if !ok {
		return 0, fmt.Errorf("sql query: the result has no column %q (watermark); it has %s", s.spec.Watermark, strings.Join(sortedKeys(index), ", "))
	}
	for _, f := range sortedKeys(s.spec.Mapping) {
		if _, ok := index[s.spec.Mapping[f]]; !ok {
			return 0, fmt.Errorf("sql query: the result has no column %q (mapping.%s); it has %s", s.spec.Mapping[f], f, strings.Join(sortedKeys(index), ", "))
		}
	}
	idIdx := len(types) - 1 // servq_id, added last
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		n++
		clear(vals)
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("sql query (page %d, row %d): %w", page, n, s.sanitize(err))
		}
		r := &sqlRow{s: s, vals: vals, types: types, index: index, pos: fmt.Sprintf("query page %d row %d", page, n)}
		id := r.text(vals[idIdx])
		if id != "" {
			r.pos += " (id " + id + ")"
		}
		if !st.cutoff.IsZero() && s.instant(vals[wmIdx], types[wmIdx]).After(st.cutoff) {
			// Not settled: this row and all after it (watermark order)
			// are read by a later run.
			st.unsettled = true
			return n, nil
		}
		if err := s.advance(st, vals[wmIdx], types[wmIdx], id); err != nil {
			return 0, err
		}
		s.emit(r, b)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sql query (page %d): %w", page, s.sanitize(err))
	}
	return n, nil
}

// instant is the time a time watermark value stands for (a column without
// zone holds a wall clock of time_zone); zero when it is not a time, which
// advance then reports.
func (s *sqlSource) instant(v any, ct *sql.ColumnType) time.Time {
	t, ok := v.(time.Time)
	if !ok {
		return time.Time{}
	}
	if s.zoneless[ct.DatabaseTypeName()] {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), s.loc)
	}
	return t
}

// advance moves the position to the row's watermark. Rows come in
// watermark order, so a larger value starts a new set of ids seen.
func (s *sqlSource) advance(st *sqlState, v any, ct *sql.ColumnType, id string) error {
	if s.timeWM {
		t, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("sql query: watermark column %q is %s, not a timestamp (set watermark_type: integer for an increasing number)", s.spec.Watermark, ct.DatabaseTypeName())
		}
		switch {
		case t.After(st.t):
			st.t, st.seen, st.list = t, map[string]bool{}, nil
		case t.Before(st.t):
			return fmt.Errorf("sql query: watermark %s came after %s: the result is not ordered by %q", t, st.t, s.spec.Watermark)
		}
		st.at = t
		if s.zoneless[ct.DatabaseTypeName()] {
			st.at = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), s.loc)
		}
	} else {
		var x int64
		switch w := v.(type) {
		case int64:
			x = w
		case []byte, string:
			var err error
			if x, err = strconv.ParseInt(fmt.Sprint(sqlString(w)), 10, 64); err != nil {
				return fmt.Errorf("sql query: watermark column %q holds %q, not an integer", s.spec.Watermark, sqlString(w))
			}
		default:
			return fmt.Errorf("sql query: watermark column %q is %s, not an integer", s.spec.Watermark, ct.DatabaseTypeName())
		}
		switch {
		case x > st.n:
			st.n, st.seen, st.list = x, map[string]bool{}, nil
		case x < st.n:
			return fmt.Errorf("sql query: watermark %d came after %d: the result is not ordered by %q", x, st.n, s.spec.Watermark)
		}
	}
	st.add(id)
	return nil
}

func sqlString(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// sqlRow is one result row with the conversions of the mapping.
type sqlRow struct {
	s     *sqlSource
	vals  []any
	types []*sql.ColumnType
	index map[string]int
	pos   string
}

// text is a value as the file sources would see it.
func (r *sqlRow) text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return strings.TrimSpace(string(x))
	case string:
		return strings.TrimSpace(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// col returns the value of a mapped field, nil when unmapped or NULL.
func (r *sqlRow) col(field string) (any, *sql.ColumnType) {
	name, ok := r.s.spec.Mapping[field]
	if !ok {
		return nil, nil
	}
	i := r.index[name]
	return r.vals[i], r.types[i]
}

func (r *sqlRow) str(field string) string {
	v, _ := r.col(field)
	return r.text(v)
}

// time converts a mapped time column: timestamp columns with a zone are
// instants, those without (PostgreSQL timestamp, MySQL DATETIME) wall
// clocks in time_zone; text and numbers go through time_format, or
// RFC 3339 / "YYYY-MM-DD hh:mm:ss" in time_zone by default.
func (r *sqlRow) time(field string) (time.Time, error) {
	v, ct := r.col(field)
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		if r.s.zoneless[ct.DatabaseTypeName()] {
			return time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), r.s.loc), nil
		}
		return x, nil
	}
	txt := r.text(v)
	if txt == "" {
		return time.Time{}, nil
	}
	if r.s.spec.TimeFormat != "" {
		t, err := r.s.times.parse(txt)
		if err != nil {
			return t, fmt.Errorf("column %q (%s): %q is not a time in format %s", r.s.spec.Mapping[field], field, txt, r.s.spec.TimeFormat)
		}
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, txt); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, txt, r.s.loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("column %q (%s): %q is not a time (a timestamp column, RFC 3339 or YYYY-MM-DD hh:mm:ss text; set time_format for others)", r.s.spec.Mapping[field], field, txt)
}

// get serves a mapped field to the file sources' row mappers: times as
// RFC 3339, everything else as text.
func (r *sqlRow) get(col string) (string, bool) {
	i, ok := r.index[col]
	if !ok {
		return "", false
	}
	return r.text(r.vals[i]), true
}

// fileRow converts the row for the file sources' mappers; time fields
// are checked and converted to RFC 3339 first (a bad one rejects the row).
func (r *sqlRow) fileRow(b *collectors.Batch) (row, bool) {
	times := map[string]string{}
	for _, f := range sortedKeys(r.s.spec.Mapping) {
		if !sqlTimeFields[f] {
			continue
		}
		t, err := r.time(f)
		if err != nil {
			b.Reject("bad_time", r.pos, err)
			return row{}, false
		}
		if !t.IsZero() {
			times[r.s.spec.Mapping[f]] = t.Format(time.RFC3339Nano)
		} else {
			times[r.s.spec.Mapping[f]] = ""
		}
	}
	return row{pos: r.pos, get: func(col string) (string, bool) {
		if v, ok := times[col]; ok {
			return v, true
		}
		return r.get(col)
	}}, true
}

func (s *sqlSource) emit(r *sqlRow, b *collectors.Batch) {
	switch s.spec.Record {
	case "ticket":
		fr, ok := r.fileRow(b)
		if !ok {
			return
		}
		tk, ok := s.tickets.ticket(fr, b)
		if !ok {
			return
		}
		if v := r.str("sla_breaches"); v != "" {
			tk.SLABreaches = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
		}
		if v := r.str("deleted"); v != "" {
			d, err := strconv.ParseBool(strings.ToLower(v))
			if err != nil {
				b.Reject("bad_value", r.pos, fmt.Errorf("column %q (deleted): %q is not true/false", s.spec.Mapping["deleted"], v))
				return
			}
			tk.Deleted = d
		}
		b.Tickets = append(b.Tickets, tk)
	case "call":
		if c, ok := s.call(r, b); ok {
			b.Calls = append(b.Calls, c)
		}
	case "survey":
		if resp, ok := s.survey(r, b); ok {
			b.Surveys = append(b.Surveys, resp)
		}
	}
}

// call maps one row to a call. Durations not mapped (or NULL) are derived
// from the times: wait = answered (or ended) - enqueued, talk = ended - answered.
// Without an outcome column, a call with answered_at is answered and one
// without is abandoned.
func (s *sqlSource) call(r *sqlRow, b *collectors.Batch) (record.Call, bool) {
	c := record.Call{ID: r.str("id"), Queue: r.str("queue"), Agent: r.str("agent"), Channel: r.str("channel")}
	if c.ID == "" {
		b.Reject("missing_id", r.pos, fmt.Errorf("column %q (id) is empty", s.spec.Mapping["id"]))
		return c, false
	}
	var err error
	given := map[string]bool{} // durations the row states
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"enqueued_at", &c.EnqueuedAt}, {"answered_at", &c.AnsweredAt}, {"ended_at", &c.EndedAt}} {
		if *f.to, err = r.time(f.name); err != nil {
			b.Reject("bad_time", r.pos, err)
			return c, false
		}
	}
	if c.EnqueuedAt.IsZero() {
		b.Reject("bad_time", r.pos, fmt.Errorf("column %q (enqueued_at) is empty", s.spec.Mapping["enqueued_at"]))
		return c, false
	}
	for _, f := range []struct {
		name string
		to   *time.Duration
	}{{"wait_seconds", &c.Wait}, {"talk_seconds", &c.Talk}, {"hold_seconds", &c.Hold}, {"wrap_seconds", &c.Wrap}} {
		txt := r.str(f.name)
		if txt == "" {
			continue
		}
		x, err := strconv.ParseFloat(txt, 64)
		if err != nil || !(x >= 0 && x <= record.MaxCallDuration.Seconds()) {
			// NaN fails both comparisons; above the bound a call time is
			// garbage (and would overflow time.Duration).
			b.Reject("bad_number", r.pos, fmt.Errorf("column %q (%s): %q is not a number of seconds from 0 to %.0f", s.spec.Mapping[f.name], f.name, txt, record.MaxCallDuration.Seconds()))
			return c, false
		}
		*f.to = time.Duration(x * float64(time.Second))
		given[f.name] = true
	}
	out := r.str("outcome")
	if m, ok := s.spec.OutcomeMap[out]; ok {
		out = m
	} else {
		out = strings.ToLower(out)
	}
	switch {
	case out != "":
		if !validOutcome(out) {
			b.Reject("bad_value", r.pos, fmt.Errorf("column %q (outcome): %q is not an outcome (answered, abandoned, timeout, transferred, voicemail; see outcome_map)", s.spec.Mapping["outcome"], r.str("outcome")))
			return c, false
		}
		c.Outcome = record.CallOutcome(out)
	case !c.AnsweredAt.IsZero():
		c.Outcome = record.OutcomeAnswered
	default:
		c.Outcome = record.OutcomeAbandoned
	}
	if !given["wait_seconds"] {
		end := c.AnsweredAt
		if end.IsZero() {
			end = c.EndedAt
		}
		if !end.IsZero() && end.After(c.EnqueuedAt) {
			c.Wait = end.Sub(c.EnqueuedAt)
		}
	}
	if !given["talk_seconds"] && !c.AnsweredAt.IsZero() && c.EndedAt.After(c.AnsweredAt) {
		c.Talk = c.EndedAt.Sub(c.AnsweredAt)
	}
	if c.EndedAt.IsZero() {
		c.EndedAt = c.EnqueuedAt.Add(c.Wait + c.Talk + c.Hold)
	}
	return c, true
}

// survey maps one row with survey_csv's scoring (scale per kind, blank or
// out-of-scale scores rejected).
func (s *sqlSource) survey(r *sqlRow, b *collectors.Batch) (record.SurveyResponse, bool) {
	kind := record.SurveyKind(strings.ToLower(r.str("kind")))
	if kind == "" {
		kind = record.SurveyKind(s.spec.Kind)
	}
	scale, ok := surveyScales[kind]
	if !ok || kind == record.KindSERVQUAL {
		b.Reject("bad_value", r.pos, fmt.Errorf("column %q (kind): %q is not csat, nps or ces", s.spec.Mapping["kind"], r.str("kind")))
		return record.SurveyResponse{}, false
	}
	sc := s.surveys[kind]
	if sc == nil {
		sc = &surveyCSV{kind: kind, lo: scale[0], hi: scale[1]}
		sc.times, _ = newTimeParser("rfc3339", "")
		m := &sc.spec.Mapping
		m.ID, m.SubmittedAt, m.Score = s.spec.Mapping["id"], s.spec.Mapping["submitted_at"], s.spec.Mapping["score"]
		m.TicketID, m.Channel, m.Queue = s.spec.Mapping["ticket_id"], s.spec.Mapping["channel"], s.spec.Mapping["queue"]
		s.surveys[kind] = sc
	}
	fr, ok := r.fileRow(b)
	if !ok {
		return record.SurveyResponse{}, false
	}
	resp, ok := sc.response(fr, b)
	if !ok {
		return resp, false
	}
	resp.Survey = s.spec.Survey
	if v := r.str("survey"); v != "" {
		resp.Survey = v
	}
	if resp.Survey == "" {
		b.Reject("missing_field", r.pos, fmt.Errorf("column %q (survey) is empty", s.spec.Mapping["survey"]))
		return resp, false
	}
	return resp, true
}
