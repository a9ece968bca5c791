package sources

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/servq/servq/collectors"
	"github.com/servq/servq/collectors/record"
	"github.com/servq/servq/config"
)

// surveyWebhook receives survey responses pushed by Delighted, Typeform or
// any sender of servq's generic JSON format, at /webhooks/<collector name>.
//
// Each delivery is authenticated by its signature, normalized and written
// to a spool (a bbolt file in the data directory) that is fsync'd before
// the sender gets its 2xx: an acknowledged response survives a crash. The
// spool keeps the latest version of each response (Delighted sends
// survey_response.created, then .updated when the comment or score
// changes). Collect hands over the responses whose last update is at least
// `settle` old, in the order they were last written; the cursor is that
// order's sequence number, so a response is normally counted once, in its
// final version. One updated after it was counted is handed over again and
// the quality model, which dedups survey IDs, keeps the first count.
type surveyWebhook struct {
	name      string
	log       *slog.Logger
	path      string // spool file; "" when the data directory is unknown
	format    string
	signature string
	secret    config.Secret
	apiKey    string
	survey    string
	maxBody   int64
	settle    time.Duration
	retention time.Duration
	scales    map[record.SurveyKind][2]float64
	fields    map[string]webhookField // typeform: field ref -> mapping
	mapping   webhookMapping

	now     func() time.Time // handler clock (tests replace it)
	limiter *tokenBucket     // nil: unlimited

	mu     sync.RWMutex // guards db and closed; held (read) while the db is used
	db     *bolt.DB
	closed bool

	rejMu    sync.Mutex
	rejected []collectors.Rejection // handler rejections, reported by the next Collect
	dropped  int
}

type surveyWebhookSpec struct {
	Format              string                  `yaml:"format"`
	Signature           string                  `yaml:"signature"`
	InsecureNoSignature bool                    `yaml:"insecure_no_signature"`
	Secret              config.Secret           `yaml:"secret"`
	SecretFile          string                  `yaml:"secret_file"`
	APIKey              string                  `yaml:"api_key"`
	Survey              string                  `yaml:"survey"`
	MaxBodyBytes        int64                   `yaml:"max_body_bytes"`
	RateLimit           *float64                `yaml:"rate_limit"`
	Settle              *config.Duration        `yaml:"settle"`
	Retention           config.Duration         `yaml:"retention"`
	Scales              map[string]webhookScale `yaml:"scales"`
	Fields              map[string]webhookField `yaml:"fields"`
	Mapping             webhookMapping          `yaml:"mapping"`
}

type webhookScale struct {
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// webhookField maps one Typeform question (by its ref) to an instrument.
type webhookField struct {
	// Kind: csat, nps, ces, or servqual:E<n> / servqual:P<n> (item n of
	// the 22-item instrument, expectation or perception side).
	Kind     string   `yaml:"kind"`
	Survey   string   `yaml:"survey"` // survey label; default the collector's
	ScaleMin *float64 `yaml:"scale_min"`
	ScaleMax *float64 `yaml:"scale_max"`

	kind     record.SurveyKind
	item     int  // servqual item 1-22
	expect   bool // servqual expectation side
	lo, hi   float64
	hasScale bool
}

// webhookMapping names where ticket, queue and channel come from: Typeform
// hidden fields, Delighted person properties.
type webhookMapping struct {
	TicketID string `yaml:"ticket_id"`
	Queue    string `yaml:"queue"`
	Channel  string `yaml:"channel"`
}

// Defaults of survey_webhook.
const (
	webhookDefaultMaxBody   = 1 << 20
	webhookDefaultRate      = 20.0
	webhookDefaultSettle    = 10 * time.Minute
	webhookDefaultRetention = 30 * 24 * time.Hour
	// webhookMaxSkew bounds the age (and future skew) of a generic
	// delivery's X-Servq-Timestamp: older deliveries are replays.
	webhookMaxSkew = 5 * time.Minute
	// webhookOpenTimeout: a second open of a spool fails after this
	// instead of waiting for the lock forever.
	webhookOpenTimeout = time.Second
	webhookMaxRejects  = 100
)

// Signature headers.
const (
	hdrServqSignature    = "X-Servq-Signature"
	hdrServqTimestamp    = "X-Servq-Timestamp"
	hdrDelightedSig      = "X-Delighted-Webhook-Signature"
	hdrTypeformSignature = "Typeform-Signature"
	hdrSMAPIKey          = "Sm-Apikey"
	hdrSMSignature       = "Sm-Signature"
)

var webhookDefaultSignature = map[string]string{
	"delighted": "delighted", "typeform": "typeform", "generic": "generic_hmac_sha256",
}

func init() {
	collectors.Register("survey_webhook", newSurveyWebhook)
}

func newSurveyWebhook(c *config.Collector, env collectors.Env) (collectors.Source, error) {
	var sp surveyWebhookSpec
	if err := c.DecodeSpec(&sp); err != nil {
		return nil, err
	}
	s := &surveyWebhook{name: c.Name, log: env.Logger, format: sp.Format, survey: sp.Survey,
		apiKey: sp.APIKey, mapping: sp.Mapping, now: time.Now}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, ok := webhookDefaultSignature[sp.Format]; !ok {
		return nil, c.Errorf("format", "unknown format %q (delighted, typeform, generic)", sp.Format)
	}
	s.signature = sp.Signature
	if s.signature == "" {
		s.signature = webhookDefaultSignature[sp.Format]
	}
	switch s.signature {
	case "delighted", "typeform", "surveymonkey", "generic_hmac_sha256":
	case "none":
		if !sp.InsecureNoSignature {
			return nil, c.Errorf("signature", "none accepts anyone's deliveries; set insecure_no_signature: true to allow it (only behind an authenticating proxy)")
		}
	default:
		return nil, c.Errorf("signature", "unknown signature %q (delighted, typeform, surveymonkey, generic_hmac_sha256, none)", sp.Signature)
	}
	secret, err := resolveSecret(c, "secret", sp.Secret, sp.SecretFile)
	if err != nil {
		return nil, err
	}
	s.secret = secret
	if s.signature != "none" && secret == "" {
		return nil, c.Errorf("secret", "is required for signature %s (or secret_file)", s.signature)
	}
	if s.signature == "surveymonkey" && sp.APIKey == "" {
		return nil, c.Errorf("api_key", "is required for signature surveymonkey (the app's client ID / API key; secret is its API secret)")
	}
	if s.signature != "surveymonkey" && sp.APIKey != "" {
		return nil, c.Errorf("api_key", "is only used by signature surveymonkey")
	}
	if sp.Survey == "" && sp.Format != "generic" {
		return nil, c.Errorf("survey", "is required (the survey label, e.g. post-contact)")
	}
	s.maxBody = sp.MaxBodyBytes
	switch {
	case s.maxBody == 0:
		s.maxBody = webhookDefaultMaxBody
	case s.maxBody < 1024:
		return nil, c.Errorf("max_body_bytes", "must be at least 1024")
	}
	rate := webhookDefaultRate
	if sp.RateLimit != nil {
		rate = *sp.RateLimit
	}
	switch {
	case rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0):
		return nil, c.Errorf("rate_limit", "must be a positive number of deliveries per second, or 0 for no limit")
	case rate > 0:
		s.limiter = newTokenBucket(rate)
	}
	s.settle = webhookDefaultSettle
	if sp.Settle != nil {
		s.settle = sp.Settle.D()
	}
	if s.settle < 0 {
		return nil, c.Errorf("settle", "must not be negative")
	}
	s.retention = sp.Retention.D()
	switch {
	case s.retention == 0:
		s.retention = webhookDefaultRetention
	case s.retention < 0:
		return nil, c.Errorf("retention", "must not be negative")
	}
	if s.retention <= s.settle {
		return nil, c.Errorf("retention", "must be longer than settle (%s)", s.settle)
	}
	s.scales = map[record.SurveyKind][2]float64{}
	for k, v := range surveyScales {
		s.scales[k] = v
	}
	for k, sc := range sp.Scales {
		kind := record.SurveyKind(k)
		def, ok := surveyScales[kind]
		if !ok || kind == record.KindSERVQUAL {
			return nil, c.Errorf("scales."+k, "unknown kind %q (csat, nps, ces)", k)
		}
		if sc.Min != nil {
			def[0] = *sc.Min
		}
		if sc.Max != nil {
			def[1] = *sc.Max
		}
		if def[0] >= def[1] {
			return nil, c.Errorf("scales."+k, "max must be greater than min")
		}
		s.scales[kind] = def
	}
	if sp.Format == "typeform" {
		if len(sp.Fields) == 0 {
			return nil, c.Errorf("fields", "typeform needs fields: the refs of the scored questions and their kind")
		}
		s.fields = map[string]webhookField{}
		for ref, f := range sp.Fields {
			if err := s.parseField(&f); err != nil {
				return nil, c.Errorf("fields."+ref, "%v", err)
			}
			s.fields[ref] = f
		}
	} else if len(sp.Fields) > 0 {
		return nil, c.Errorf("fields", "is only used by format typeform")
	}
	if s.mapping == (webhookMapping{}) {
		s.mapping = webhookMapping{TicketID: "ticket_id", Queue: "queue", Channel: "channel"}
	}
	if env.DataDir != "" {
		s.path = filepath.Join(env.DataDir, "webhook-"+c.Name+".spool")
	}
	// The spool is opened on the first request or Collect, never here:
	// `servq check` and reloads build sources while the running one holds
	// the file.
	return s, nil
}

func (s *surveyWebhook) parseField(f *webhookField) error {
	k := f.Kind
	if rest, ok := strings.CutPrefix(k, "servqual:"); ok {
		if len(rest) < 2 || (rest[0] != 'E' && rest[0] != 'P') {
			return fmt.Errorf("kind %q: servqual items are servqual:E<n> or servqual:P<n>, n from 1 to 22", k)
		}
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 1 || n > 22 {
			return fmt.Errorf("kind %q: servqual items are servqual:E<n> or servqual:P<n>, n from 1 to 22", k)
		}
		f.kind, f.item, f.expect = record.KindSERVQUAL, n, rest[0] == 'E'
	} else {
		f.kind = record.SurveyKind(k)
		if _, ok := surveyScales[f.kind]; !ok || f.kind == record.KindSERVQUAL {
			return fmt.Errorf("unknown kind %q (csat, nps, ces, servqual:E<n>, servqual:P<n>)", k)
		}
	}
	sc := surveyScales[f.kind]
	if d, ok := s.scales[f.kind]; ok {
		sc = d
	}
	if f.ScaleMin != nil {
		sc[0] = *f.ScaleMin
	}
	if f.ScaleMax != nil {
		sc[1] = *f.ScaleMax
	}
	if sc[0] >= sc[1] {
		return fmt.Errorf("scale_max must be greater than scale_min (%g)", sc[0])
	}
	f.lo, f.hi, f.hasScale = sc[0], sc[1], true
	return nil
}

// --- spool -----------------------------------------------------------------

var (
	spoolEntries = []byte("entries") // response key -> spoolEntry (JSON)
	spoolOrder   = []byte("order")   // seq (8 bytes, big endian) -> response key
	spoolMeta    = []byte("meta")
	spoolCounted = []byte("counted") // meta: highest seq known committed
)

// spoolEntry is the latest version of one response as received.
type spoolEntry struct {
	Key       string                  `json:"key"`
	Seq       uint64                  `json:"seq"`
	Received  time.Time               `json:"received"` // first delivery
	Updated   time.Time               `json:"updated"`  // last delivery that changed it
	Versions  int                     `json:"versions"`
	SourceAt  time.Time               `json:"source_updated,omitzero"`
	Responses []record.SurveyResponse `json:"responses"`
}

var errSpoolClosed = errors.New("survey webhook spool is closed (servq is stopping or reloading)")

// withDB runs fn with the spool open, opening it on first use. The read
// lock held during fn makes Close wait for deliveries being written.
func (s *surveyWebhook) withDB(fn func(db *bolt.DB) error) error {
	for {
		s.mu.RLock()
		if s.db != nil {
			err := fn(s.db)
			s.mu.RUnlock()
			return err
		}
		s.mu.RUnlock()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return errSpoolClosed
		}
		if s.db == nil {
			db, err := s.open()
			if err != nil {
				s.mu.Unlock()
				return err
			}
			s.db = db
		}
		s.mu.Unlock()
	}
}

func (s *surveyWebhook) open() (*bolt.DB, error) {
	if s.path == "" {
		return nil, errors.New("survey webhook spool: no data directory (--storage.path) to keep it in")
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return nil, fmt.Errorf("survey webhook spool: %w", err)
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: webhookOpenTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("survey webhook spool %s is locked by another process or collector (another servq with the same --storage.path?)", s.path)
		}
		return nil, fmt.Errorf("survey webhook spool: opening %s: %w", s.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{spoolEntries, spoolOrder, spoolMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("survey webhook spool: initialising %s: %w", s.path, err)
	}
	return db, nil
}

// Close closes the spool. Deliveries after Close answer 503 (the sender
// retries, and reaches the new source after a reload).
func (s *surveyWebhook) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

func seqKey(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

// store upserts one response, durably (bbolt fsyncs on commit). A delivery
// older (by the sender's own update time) than the stored version is
// acknowledged and ignored.
func (s *surveyWebhook) store(key string, sourceAt time.Time, resps []record.SurveyResponse) error {
	return s.withDB(func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			ent, ord := tx.Bucket(spoolEntries), tx.Bucket(spoolOrder)
			now := s.now().UTC()
			e := spoolEntry{Key: key, Received: now}
			if old := ent.Get([]byte(key)); old != nil {
				if err := json.Unmarshal(old, &e); err != nil {
					return fmt.Errorf("spool entry %q: %w", key, err)
				}
				if !sourceAt.IsZero() && !e.SourceAt.IsZero() && sourceAt.Before(e.SourceAt) {
					s.log.Debug("survey webhook: older version of a stored response ignored", "response", key)
					return nil
				}
				if counted, _ := binary.Uvarint(tx.Bucket(spoolMeta).Get(spoolCounted)); e.Seq <= counted {
					// Nothing is wrong: the response was counted in its
					// earlier version, which the quality model keeps.
					s.log.Debug("survey webhook: late update of a response already counted", "response", key, "versions", e.Versions+1)
				}
				if err := ord.Delete(seqKey(e.Seq)); err != nil {
					return err
				}
			}
			seq, err := ord.NextSequence()
			if err != nil {
				return err
			}
			e.Seq, e.Updated, e.Versions, e.Responses = seq, now, e.Versions+1, resps
			if !sourceAt.IsZero() {
				e.SourceAt = sourceAt
			}
			buf, err := json.Marshal(&e)
			if err != nil {
				return err
			}
			if err := ent.Put([]byte(key), buf); err != nil {
				return err
			}
			return ord.Put(seqKey(seq), []byte(key))
		})
	})
}

// webhookCursor is the spool sequence number up to which responses were
// handed to the quality model.
type webhookCursor struct {
	Seq uint64 `json:"seq"`
}

// Collect hands over the settled responses written after the cursor, in
// write order, and prunes spool entries past retention that the committed
// cursor already covers.
func (s *surveyWebhook) Collect(ctx context.Context, raw []byte, b *collectors.Batch) ([]byte, error) {
	var cur webhookCursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return nil, fmt.Errorf("survey webhook: bad cursor: %w", err)
		}
	}
	s.flushRejections(b)
	next := cur
	cutoff := b.Now.Add(-s.settle)
	err := s.withDB(func(db *bolt.DB) error {
		err := db.View(func(tx *bolt.Tx) error {
			ent := tx.Bucket(spoolEntries)
			c := tx.Bucket(spoolOrder).Cursor()
			for k, v := c.Seek(seqKey(cur.Seq + 1)); k != nil; k, v = c.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				raw := ent.Get(v)
				var e spoolEntry
				if raw == nil || json.Unmarshal(raw, &e) != nil {
					b.Reject("bad_spool_entry", "spool "+strconv.Quote(string(v)), errors.New("unreadable spool entry"))
					next.Seq = binary.BigEndian.Uint64(k)
					continue
				}
				// Write order is time order: the first response not
				// settled yet ends the run, the next run continues there.
				if e.Updated.After(cutoff) {
					break
				}
				b.Surveys = append(b.Surveys, e.Responses...)
				next.Seq = e.Seq
			}
			return nil
		})
		if err != nil {
			return err
		}
		return s.prune(db, cur.Seq, b.Now.Add(-s.retention))
	})
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(next)
	return out, err
}

// prune deletes entries older than the retention that the committed cursor
// covers, and records that cursor for the late-update log.
func (s *surveyWebhook) prune(db *bolt.DB, counted uint64, before time.Time) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(spoolMeta)
		if old, _ := binary.Uvarint(meta.Get(spoolCounted)); counted > old {
			if err := meta.Put(spoolCounted, binary.AppendUvarint(nil, counted)); err != nil {
				return err
			}
		}
		ent, ord := tx.Bucket(spoolEntries), tx.Bucket(spoolOrder)
		c := ord.Cursor()
		var dead [][2][]byte
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= counted; k, v = c.Next() {
			var e spoolEntry
			if raw := ent.Get(v); raw != nil && json.Unmarshal(raw, &e) == nil && !e.Updated.Before(before) {
				break // write order is time order: the rest is younger
			}
			dead = append(dead, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		for _, kv := range dead {
			if err := ord.Delete(kv[0]); err != nil {
				return err
			}
			if err := ent.Delete(kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
}

// --- handler ---------------------------------------------------------------

// Handler serves the deliveries: POST only; 401 bad signature, 400 bad
// payload, 413 too large, 429 rate limited (with Retry-After), 503 while
// the spool is closed or unavailable; 200 once the response is durable.
func (s *surveyWebhook) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// webhookError is what the sender is told: short, never a secret.
type webhookError struct {
	status int
	msg    string
	reason string // rejection reason; "" to not count it
}

func (s *surveyWebhook) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "unavailable, retry later", http.StatusServiceUnavailable)
		return
	}
	if s.limiter != nil {
		if wait, ok := s.limiter.take(s.now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
	}
	if err := s.receive(r); err != nil {
		if err.reason != "" {
			s.reject(err.reason, r, err.msg)
		}
		if err.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "30")
		}
		http.Error(w, err.msg, err.status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (s *surveyWebhook) receive(r *http.Request) *webhookError {
	if r.ContentLength > s.maxBody {
		return &webhookError{http.StatusRequestEntityTooLarge, "payload too large", "too_large"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) { // the server's --web.max-request-body
		return &webhookError{http.StatusRequestEntityTooLarge, "payload too large", "too_large"}
	}
	if err != nil {
		return &webhookError{http.StatusBadRequest, "bad payload: unreadable body", "bad_body"}
	}
	if int64(len(body)) > s.maxBody {
		return &webhookError{http.StatusRequestEntityTooLarge, "payload too large", "too_large"}
	}
	if !s.verify(r.Header, body) {
		return &webhookError{http.StatusUnauthorized, "bad signature", "bad_signature"}
	}
	key, sourceAt, resps, field := s.parse(body)
	if field != "" {
		return &webhookError{http.StatusBadRequest, "bad payload: " + field, "bad_payload"}
	}
	if key == "" { // an event servq does not count (unsubscribe, unmapped survey type)
		return nil
	}
	if err := s.store(key, sourceAt, resps); err != nil {
		s.log.Error("survey webhook: storing a delivery failed; the sender will retry", "err", err)
		return &webhookError{http.StatusServiceUnavailable, "unavailable, retry later", ""}
	}
	return nil
}

// reject keeps a handler rejection for the next Collect, which counts it
// in servq_collector_rejected_records_total.
func (s *surveyWebhook) reject(reason string, r *http.Request, msg string) {
	s.log.Warn("survey webhook: delivery rejected", "reason", reason, "from", r.RemoteAddr, "answer", msg)
	s.rejMu.Lock()
	defer s.rejMu.Unlock()
	if len(s.rejected) >= webhookMaxRejects {
		s.dropped++
		return
	}
	s.rejected = append(s.rejected, collectors.Rejection{Reason: reason,
		Position: "delivery from " + r.RemoteAddr + " at " + s.now().UTC().Format(time.RFC3339), Err: errors.New(msg)})
}

func (s *surveyWebhook) flushRejections(b *collectors.Batch) {
	s.rejMu.Lock()
	defer s.rejMu.Unlock()
	b.Rejected = append(b.Rejected, s.rejected...)
	if s.dropped > 0 {
		b.Reject("too_many_rejections", "webhook", fmt.Errorf("%d more rejected deliveries not itemized", s.dropped))
	}
	s.rejected, s.dropped = nil, 0
}

// --- signatures --------------------------------------------------------------

func hmacSum(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// verify checks the delivery's signature in constant time.
func (s *surveyWebhook) verify(h http.Header, body []byte) bool {
	key := []byte(s.secret.Reveal())
	switch s.signature {
	case "none":
		return true
	case "delighted":
		// X-Delighted-Webhook-Signature: sha256=<hex HMAC-SHA256(API key, body)>
		got, err := hex.DecodeString(strings.TrimPrefix(h.Get(hdrDelightedSig), "sha256="))
		return err == nil && hmac.Equal(got, hmacSum(sha256.New, key, body))
	case "typeform":
		// Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, body)>
		v, ok := strings.CutPrefix(h.Get(hdrTypeformSignature), "sha256=")
		got, err := base64.StdEncoding.DecodeString(v)
		return ok && err == nil && hmac.Equal(got, hmacSum(sha256.New, key, body))
	case "surveymonkey":
		// Sm-Apikey: <API key>; Sm-Signature: base64 HMAC-SHA1("<API key>&<API secret>", body)
		apiOK := subtle.ConstantTimeCompare([]byte(h.Get(hdrSMAPIKey)), []byte(s.apiKey)) == 1
		got, err := base64.StdEncoding.DecodeString(h.Get(hdrSMSignature))
		sum := hmacSum(sha1.New, []byte(s.apiKey+"&"+s.secret.Reveal()), body)
		return apiOK && err == nil && hmac.Equal(got, sum)
	case "generic_hmac_sha256":
		// X-Servq-Timestamp: <unix seconds>
		// X-Servq-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
		ts := h.Get(hdrServqTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return false
		}
		if d := s.now().Sub(time.Unix(sec, 0)); d > webhookMaxSkew || d < -webhookMaxSkew {
			return false
		}
		v, ok := strings.CutPrefix(h.Get(hdrServqSignature), "sha256=")
		got, err := hex.DecodeString(v)
		return ok && err == nil && hmac.Equal(got, hmacSum(sha256.New, key, []byte(ts), []byte("."), body))
	}
	return false
}

// --- payloads --------------------------------------------------------------

// parse turns a verified body into the spool key (the vendor's response
// ID), the sender's update time if it has one, and the responses. A
// payload servq does not count returns key "". A bad payload returns the
// name of the offending field.
func (s *surveyWebhook) parse(body []byte) (key string, sourceAt time.Time, resps []record.SurveyResponse, field string) {
	switch s.format {
	case "delighted":
		return s.parseDelighted(body)
	case "typeform":
		return s.parseTypeform(body)
	}
	return s.parseGeneric(body)
}

func (s *surveyWebhook) inScale(kind record.SurveyKind, v float64) bool {
	sc := s.scales[kind]
	return !math.IsNaN(v) && v >= sc[0] && v <= sc[1]
}

// propString reads a mapped property (Delighted person properties,
// Typeform hidden fields) as text.
func propString(m map[string]any, name string) string {
	if name == "" || m == nil {
		return ""
	}
	switch v := m[name].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// Delighted survey types servq counts, and the instrument each is.
var delightedKinds = map[string]record.SurveyKind{
	"nps": record.KindNPS, "csat": record.KindCSAT, "ces": record.KindCES,
	"smileys": record.KindCSAT, "stars": record.KindCSAT,
}

type delightedEvent struct {
	EventType string `json:"event_type"`
	EventData struct {
		ID               json.RawMessage `json:"id"`
		SurveyType       string          `json:"survey_type"`
		Score            *float64        `json:"score"`
		CreatedAt        *int64          `json:"created_at"`
		UpdatedAt        *int64          `json:"updated_at"`
		PersonProperties map[string]any  `json:"person_properties"`
	} `json:"event_data"`
}

func (s *surveyWebhook) parseDelighted(body []byte) (string, time.Time, []record.SurveyResponse, string) {
	var ev delightedEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return "", time.Time{}, nil, "not JSON"
	}
	switch ev.EventType {
	case "survey_response.created", "survey_response.updated":
	case "":
		return "", time.Time{}, nil, "event_type"
	default:
		s.log.Debug("survey webhook: event type not counted", "event_type", ev.EventType)
		return "", time.Time{}, nil, ""
	}
	d := ev.EventData
	id := jsonID(d.ID)
	if id == "" {
		return "", time.Time{}, nil, "event_data.id"
	}
	kind, ok := delightedKinds[d.SurveyType]
	if !ok {
		s.log.Debug("survey webhook: Delighted survey type not counted", "survey_type", d.SurveyType)
		return "", time.Time{}, nil, ""
	}
	if d.Score == nil || !s.inScale(kind, *d.Score) {
		return "", time.Time{}, nil, "event_data.score"
	}
	if d.CreatedAt == nil || *d.CreatedAt <= 0 {
		return "", time.Time{}, nil, "event_data.created_at"
	}
	var updated time.Time
	if d.UpdatedAt != nil && *d.UpdatedAt > 0 {
		updated = time.Unix(*d.UpdatedAt, 0).UTC()
	}
	resp := record.SurveyResponse{ID: id, Survey: s.survey, Kind: kind, Score: *d.Score, HasScore: true,
		SubmittedAt: time.Unix(*d.CreatedAt, 0).UTC(),
		TicketID:    propString(d.PersonProperties, s.mapping.TicketID),
		Queue:       propString(d.PersonProperties, s.mapping.Queue),
		Channel:     propString(d.PersonProperties, s.mapping.Channel)}
	return id, updated, []record.SurveyResponse{resp}, ""
}

// jsonID accepts an ID sent as a string or a number.
func jsonID(raw json.RawMessage) string {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

type typeformEvent struct {
	EventType    string `json:"event_type"`
	FormResponse *struct {
		FormID      string         `json:"form_id"`
		Token       string         `json:"token"`
		SubmittedAt string         `json:"submitted_at"`
		Hidden      map[string]any `json:"hidden"`
		Answers     []struct {
			Type   string   `json:"type"`
			Number *float64 `json:"number"`
			Choice *struct {
				Label string `json:"label"`
			} `json:"choice"`
			Field struct {
				Ref  string `json:"ref"`
				Type string `json:"type"`
			} `json:"field"`
		} `json:"answers"`
	} `json:"form_response"`
}

// parseTypeform maps the configured questions of a form_response: each
// csat/nps/ces question is one response (ID token/ref), the SERVQUAL
// items together are one (ID token/servqual).
func (s *surveyWebhook) parseTypeform(body []byte) (string, time.Time, []record.SurveyResponse, string) {
	var ev typeformEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return "", time.Time{}, nil, "not JSON"
	}
	if ev.EventType != "form_response" {
		if ev.EventType == "" {
			return "", time.Time{}, nil, "event_type"
		}
		s.log.Debug("survey webhook: event type not counted", "event_type", ev.EventType)
		return "", time.Time{}, nil, ""
	}
	fr := ev.FormResponse
	switch {
	case fr == nil:
		return "", time.Time{}, nil, "form_response"
	case fr.Token == "":
		return "", time.Time{}, nil, "form_response.token"
	}
	at, err := time.Parse(time.RFC3339, fr.SubmittedAt)
	if err != nil {
		return "", time.Time{}, nil, "form_response.submitted_at"
	}
	base := record.SurveyResponse{SubmittedAt: at.UTC(),
		TicketID: propString(fr.Hidden, s.mapping.TicketID),
		Queue:    propString(fr.Hidden, s.mapping.Queue),
		Channel:  propString(fr.Hidden, s.mapping.Channel)}
	var resps []record.SurveyResponse
	sq := map[string]*record.SurveyResponse{} // by survey label
	var sqOrder []string
	for i, a := range fr.Answers {
		f, ok := s.fields[a.Field.Ref]
		if !ok {
			continue
		}
		var v float64
		switch {
		case a.Type == "number" && a.Number != nil:
			v = *a.Number
		case a.Type == "choice" && a.Choice != nil:
			// Choice questions whose labels are the scale points ("1".."5").
			if v, err = strconv.ParseFloat(strings.TrimSpace(a.Choice.Label), 64); err != nil {
				return "", time.Time{}, nil, fmt.Sprintf("form_response.answers[%d].choice.label", i)
			}
		default:
			return "", time.Time{}, nil, fmt.Sprintf("form_response.answers[%d] (ref %s): not a number or choice", i, a.Field.Ref)
		}
		if math.IsNaN(v) || v < f.lo || v > f.hi {
			return "", time.Time{}, nil, fmt.Sprintf("form_response.answers[%d] (ref %s): %g outside %g-%g", i, a.Field.Ref, v, f.lo, f.hi)
		}
		survey := f.Survey
		if survey == "" {
			survey = s.survey
		}
		if f.kind != record.KindSERVQUAL {
			r := base
			r.ID, r.Survey, r.Kind, r.Score, r.HasScore = fr.Token+"/"+a.Field.Ref, survey, f.kind, v, true
			resps = append(resps, r)
			continue
		}
		r := sq[survey]
		if r == nil {
			r = new(record.SurveyResponse)
			*r = base
			r.ID, r.Survey, r.Kind = fr.Token+"/servqual", survey, record.KindSERVQUAL
			if survey != s.survey {
				r.ID += "/" + survey
			}
			r.Servqual = make([]record.ServqualItem, 22)
			sq[survey] = r
			sqOrder = append(sqOrder, survey)
		}
		it := &r.Servqual[f.item-1]
		it.Dimension = record.ServqualDimension(f.item)
		if f.expect {
			it.Expectation, it.HasE = v, true
		} else {
			it.Perception, it.HasP = v, true
		}
	}
	for _, name := range sqOrder {
		r := sq[name]
		r.Servqual = answeredItems(r.Servqual)
		resps = append(resps, *r)
	}
	if len(resps) == 0 {
		s.log.Debug("survey webhook: form response without a configured question", "form", fr.FormID)
		return "", time.Time{}, nil, ""
	}
	return fr.Token, time.Time{}, resps, ""
}

func answeredItems(items []record.ServqualItem) []record.ServqualItem {
	out := items[:0]
	for _, it := range items {
		if it.HasE || it.HasP {
			out = append(out, it)
		}
	}
	return out
}

// genericResponse is servq's own delivery format (see the README of the
// plugin's testdata): one response per delivery.
type genericResponse struct {
	ID          string             `json:"id"`
	Survey      string             `json:"survey"`
	Kind        string             `json:"kind"`
	Score       *float64           `json:"score"`
	SubmittedAt string             `json:"submitted_at"`
	UpdatedAt   string             `json:"updated_at"`
	TicketID    string             `json:"ticket_id"`
	Queue       string             `json:"queue"`
	Channel     string             `json:"channel"`
	Servqual    map[string]float64 `json:"servqual"`
	Weights     map[string]float64 `json:"weights"`
}

func (s *surveyWebhook) parseGeneric(body []byte) (string, time.Time, []record.SurveyResponse, string) {
	var g genericResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return "", time.Time{}, nil, ute.Field
		}
		if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
			return "", time.Time{}, nil, "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
		}
		return "", time.Time{}, nil, "not JSON"
	}
	if g.ID == "" {
		return "", time.Time{}, nil, "id"
	}
	r := record.SurveyResponse{ID: g.ID, Survey: g.Survey, Kind: record.SurveyKind(g.Kind),
		TicketID: g.TicketID, Queue: g.Queue, Channel: g.Channel}
	if r.Survey == "" {
		r.Survey = s.survey
	}
	if r.Survey == "" {
		return "", time.Time{}, nil, "survey"
	}
	at, err := time.Parse(time.RFC3339, g.SubmittedAt)
	if err != nil {
		return "", time.Time{}, nil, "submitted_at"
	}
	r.SubmittedAt = at.UTC()
	var updated time.Time
	if g.UpdatedAt != "" {
		if updated, err = time.Parse(time.RFC3339, g.UpdatedAt); err != nil {
			return "", time.Time{}, nil, "updated_at"
		}
	}
	switch r.Kind {
	case record.KindCSAT, record.KindNPS, record.KindCES:
		if g.Score == nil || !s.inScale(r.Kind, *g.Score) {
			return "", time.Time{}, nil, "score"
		}
		r.Score, r.HasScore = *g.Score, true
	case record.KindSERVQUAL:
		items := make([]record.ServqualItem, 22)
		for k, v := range g.Servqual {
			n, err := strconv.Atoi(k[min(1, len(k)):])
			if len(k) < 2 || (k[0] != 'E' && k[0] != 'P') || err != nil || n < 1 || n > 22 {
				return "", time.Time{}, nil, "servqual." + k
			}
			if math.IsNaN(v) || v < 1 || v > 7 {
				return "", time.Time{}, nil, "servqual." + k
			}
			it := &items[n-1]
			it.Dimension = record.ServqualDimension(n)
			if k[0] == 'E' {
				it.Expectation, it.HasE = v, true
			} else {
				it.Perception, it.HasP = v, true
			}
		}
		r.Servqual = answeredItems(items)
		if len(r.Servqual) == 0 {
			return "", time.Time{}, nil, "servqual"
		}
		for dim, w := range g.Weights {
			if !isDimension(dim) || math.IsNaN(w) || w < 0 || w > 100 {
				return "", time.Time{}, nil, "weights." + dim
			}
		}
		if len(g.Weights) > 0 {
			r.Weights = g.Weights
		}
	default:
		return "", time.Time{}, nil, "kind"
	}
	return g.ID, updated, []record.SurveyResponse{r}, ""
}

// --- rate limit ----------------------------------------------------------------

// tokenBucket allows rate deliveries per second on average, in bursts of
// up to max(10, rate).
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64) *tokenBucket {
	burst := math.Max(10, math.Ceil(rate))
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

// take spends a token, or says how long until one is available.
func (t *tokenBucket) take(now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.After(t.last) {
		t.tokens = math.Min(t.burst, t.tokens+now.Sub(t.last).Seconds()*t.rate)
	}
	if t.last.IsZero() || now.After(t.last) {
		t.last = now
	}
	if t.tokens >= 1 {
		t.tokens--
		return 0, true
	}
	return time.Duration((1 - t.tokens) / t.rate * float64(time.Second)), false
}
