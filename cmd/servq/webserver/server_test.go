package webserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/servq/servq/cmd/servq/app"
	_ "github.com/servq/servq/collectors/sources"
)

// stuck bounds every wait of these tests: exceeding it means something
// hangs, it is never how long things are expected to take.
const stuck = 15 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start serves h on 127.0.0.1 with opt and returns the base URL.
func start(t *testing.T, h http.Handler, opt Options) (*Server, string) {
	t.Helper()
	opt.ListenAddresses = []string{"127.0.0.1:0"}
	if opt.Logger == nil {
		opt.Logger = quiet()
	}
	s, err := New(h, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stuck)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, "http://" + s.Addrs()[0].String()
}

func client() *http.Client {
	return &http.Client{Timeout: stuck, Transport: &http.Transport{DisableKeepAlives: true}}
}

func do(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// dial opens a raw connection, from local address from ("" for any).
func dial(t *testing.T, base, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: stuck}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// keepAlive makes one request on c and leaves it open, idle.
func keepAlive(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(stuck))
	fmt.Fprintf(c, "GET /-/healthy HTTP/1.1\r\nHost: servq\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
}

// closedByServer reports whether the server closed c (bounded by stuck).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(stuck))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func okHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// At the limit, connections waiting for a request (idle keep-alive ones
// and new ones that sent nothing) are closed, oldest first, to admit new
// ones; when every connection is in a request the new one is refused at
// once rather than left in the backlog.
func TestConnectionLimitEvictsWaitingThenRefuses(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	const max = 4
	defer close(release)
	s, base := start(t, mux, Options{MaxConnections: max})
	var idle []net.Conn
	for i := 0; i < 40; i++ {
		c := dial(t, base, "")
		if i%2 == 0 {
			keepAlive(t, c)
			// The server marks a connection idle just after its answer:
			// wait for that, so that the order of eviction is known.
			allWaiting(t, s.conns)
		}
		idle = append(idle, c)
	}
	// A fresh request is still served, the oldest waiting connections
	// having made room.
	if resp, _ := do(t, client(), "GET", base+"/-/healthy", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !closedByServer(idle[0]) {
		t.Error("the oldest idle connection is still open")
	}
	open, evicted, refused := s.conns.counts()
	if open > max || evicted != 40+1-max || refused != 0 {
		t.Errorf("open %d (max %d), evicted %d (want %d), refused %d", open, max, evicted, 40+1-max, refused)
	}
	// Fill every slot with a request in progress, once the server has
	// closed the connection of the request above (it lingers ~500 ms
	// after a Connection: close answer, see net/http rstAvoidanceDelay).
	allWaiting(t, s.conns)
	for i := 0; i < max; i++ {
		c := dial(t, base, "")
		fmt.Fprintf(c, "GET /block HTTP/1.1\r\nHost: servq\r\n\r\n")
		select {
		case <-entered:
		case <-time.After(stuck):
			t.Fatal("a request under the limit was not served")
		}
	}
	extra := dial(t, base, "")
	if !closedByServer(extra) {
		t.Fatal("a connection over the limit was neither served nor closed")
	}
	if _, _, refused := s.conns.counts(); refused != 1 {
		t.Errorf("%d connections refused, want 1", refused)
	}
}

// allWaiting waits until every open connection waits for a request.
func allWaiting(t *testing.T, cl *connLimiter) {
	t.Helper()
	deadline := time.Now().Add(stuck)
	for {
		cl.mu.Lock()
		done := cl.open == cl.waiting.Len()
		cl.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("connections still in a request")
		}
		time.Sleep(time.Millisecond)
	}
}

// A body sent a byte at a time is cut off after the read timeout: the
// handler's read fails instead of holding the connection for ever.
func TestSlowBodyCutOffAfterReadTimeout(t *testing.T) {
	readErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/webhooks/slow", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
		}
	})
	_, base := start(t, mux, Options{ReadTimeout: 300 * time.Millisecond})
	c := dial(t, base, "")
	fmt.Fprintf(c, "POST /webhooks/slow HTTP/1.1\r\nHost: servq\r\nContent-Length: 1000\r\n\r\n{")
	var err error
	select {
	case err = <-readErr:
	case <-time.After(stuck):
		t.Fatal("the slow body is still being read")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read error %v, want a timeout", err)
	}
	if !closedByServer(c) {
		t.Error("connection of the slow body not closed")
	}
}

// webhookApp runs the real service with a signed survey webhook "svy" and
// a tickets_file collector "tickets".
func webhookApp(t *testing.T, maxBody string) *app.Service {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "t.csv")
	os.WriteFile(csv, []byte("id,created\n1,2026-11-02T09:00:00Z\n"), 0o644)
	cfg := filepath.Join(dir, "servq.yml")
	os.WriteFile(cfg, []byte(`collectors:
  - name: svy
    type: survey_webhook
    schedule: "@every 1m"
    format: generic
    secret: `+whSecret+`
    max_body_bytes: `+maxBody+`
  - name: tickets
    type: tickets_file
    schedule: "@every 1m"
    path: `+csv+`
    mapping: {id: id, created_at: created}
`), 0o644)
	svc, err := app.New(app.Options{ConfigFile: cfg, StoragePath: filepath.Join(dir, "data"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stuck)
		defer cancel()
		svc.Shutdown(ctx)
	})
	return svc
}

const whSecret = "webhook-test-secret"

// signed is a generic survey delivery and its servq signature.
func signed(id string) ([]byte, http.Header) {
	body := fmt.Appendf(nil, `{"id":%q,"survey":"post","kind":"csat","score":5,"submitted_at":%q}`, id, time.Now().UTC().Format(time.RFC3339))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(whSecret))
	m.Write([]byte(ts + "." + string(body)))
	return body, http.Header{"X-Servq-Timestamp": {ts}, "X-Servq-Signature": {"sha256=" + hex.EncodeToString(m.Sum(nil))},
		"Content-Type": {"application/json"}}
}

// A body over --web.max-request-body is refused with 413: by its length
// before any handler runs, or, sent chunked, when the webhook reads past
// the limit.
func TestOversizedBody413(t *testing.T) {
	svc := webhookApp(t, "4194304")
	_, base := start(t, svc.Handler("/metrics"), Options{MaxRequestBody: 2048})
	big := bytes.Repeat([]byte("x"), 4096)
	if resp, body := do(t, client(), "POST", base+"/-/reload", bytes.NewReader(big), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /-/reload with a 4 KiB body: %d %q, want 413", resp.StatusCode, body)
	}
	chunked := io.MultiReader(bytes.NewReader(big)) // unknown length: sent chunked
	if resp, body := do(t, client(), "POST", base+"/webhooks/svy", chunked, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 4 KiB webhook body: %d %q, want 413", resp.StatusCode, body)
	}
	b, h := signed("r1")
	if resp, body := do(t, client(), "POST", base+"/webhooks/svy", bytes.NewReader(b), h); resp.StatusCode != 200 {
		t.Errorf("a delivery under the limit: %d %q", resp.StatusCode, body)
	}
}

func writeWebConfig(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("basic_auth_users:\n")
	for u, pw := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  %s: %s\n", u, h)
	}
	f := filepath.Join(t.TempDir(), "web.yml")
	os.WriteFile(f, []byte(b.String()), 0o600)
	return f
}

// With basic auth configured, webhooks are authenticated by their
// signatures: a correctly signed delivery needs no password by default,
// and does with --web.webhooks-auth=basic+signature. Every other path,
// including one that only looks like a webhook's, needs the password.
func TestWebhooksAndBasicAuth(t *testing.T) {
	svc := webhookApp(t, "0")
	cfg := writeWebConfig(t, map[string]string{"ops": "pw"})
	auth := http.Header{"Authorization": {"Basic b3BzOnB3"}} // ops:pw
	withAuth := func(h http.Header) http.Header {
		h = h.Clone()
		h["Authorization"] = auth["Authorization"]
		return h
	}
	c := client()

	_, base := start(t, svc.Handler("/metrics"), Options{ConfigFile: cfg})
	b, h := signed("a1")
	if resp, body := do(t, c, "POST", base+"/webhooks/svy", bytes.NewReader(b), h); resp.StatusCode != 200 {
		t.Errorf("signed delivery without password (signature mode): %d %q, want 200", resp.StatusCode, body)
	}
	if resp, _ := do(t, c, "POST", base+"/webhooks/svy", strings.NewReader(`{"id":"x"}`), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned delivery: %d, want 401 from the signature check", resp.StatusCode)
	}
	for _, p := range []string{"/metrics", "/webhooks/../metrics", "/-/reload"} {
		if resp, _ := do(t, c, "GET", base+p, nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without password: %d, want 401", p, resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, "GET", base+"/metrics", nil, auth); resp.StatusCode != 200 {
		t.Errorf("GET /metrics with password: %d", resp.StatusCode)
	}

	_, base = start(t, svc.Handler("/metrics"), Options{ConfigFile: cfg, WebhooksAuth: WebhooksBasicAndSignature})
	b, h = signed("a2")
	if resp, _ := do(t, c, "POST", base+"/webhooks/svy", bytes.NewReader(b), h); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed delivery without password (basic+signature): %d, want 401", resp.StatusCode)
	}
	if resp, body := do(t, c, "POST", base+"/webhooks/svy", bytes.NewReader(b), withAuth(h)); resp.StatusCode != 200 {
		t.Errorf("signed delivery with password (basic+signature): %d %q", resp.StatusCode, body)
	}
	if _, err := New(nil, Options{WebhooksAuth: "none"}); err == nil {
		t.Error("an unknown --web.webhooks-auth accepted")
	}
}

// Password guessing is rationed: beyond a client's burst of checks it gets
// 429 with Retry-After and no bcrypt runs; all clients together have a
// ration too, so many addresses cannot burn the CPU either. A login that
// succeeded before is answered from the cache, without bcrypt and without
// the ration, so a scraper keeps working through a guessing flood.
func TestPasswordGuessingThrottled(t *testing.T) {
	cfg := writeWebConfig(t, map[string]string{"ops": "pw"})
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	s, base := start(t, okHandler(), Options{ConfigFile: cfg, Now: func() time.Time { return *clock.Load() }})
	var bcrypts atomic.Int64
	s.auth.compare = func(h, p []byte) error { bcrypts.Add(1); return bcrypt.CompareHashAndPassword(h, p) }

	// from sends a request from a loopback address of its own.
	from := func(ip, user, pw string) (*http.Response, string) {
		tr := &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.SetBasicAuth(user, pw)
		resp, err := (&http.Client{Transport: tr, Timeout: stuck}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := from("127.0.0.1", "ops", "pw"); resp.StatusCode != 200 {
		t.Fatalf("correct password: %d", resp.StatusCode)
	}
	bcrypts.Store(0)
	for i := 0; i < 50; i++ {
		resp, _ := from("127.0.0.2", "ops", fmt.Sprintf("guess-%d", i))
		want := http.StatusUnauthorized
		if i >= authClientBurst {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("guess %d: %d, want %d", i, resp.StatusCode, want)
		}
		if want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "2" {
			t.Errorf("guess %d: Retry-After %q, want 2", i, resp.Header.Get("Retry-After"))
		}
	}
	if n := bcrypts.Load(); n != authClientBurst {
		t.Errorf("%d bcrypt comparisons for 50 guesses, want %d", n, authClientBurst)
	}
	// Unknown users cost a comparison too (timing must not tell them), and
	// are rationed alike.
	if resp, _ := from("127.0.0.2", "nobody", "x"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("unknown user over the ration: %d", resp.StatusCode)
	}
	// The scraper's cached login still works, without bcrypt.
	if resp, _ := from("127.0.0.1", "ops", "pw"); resp.StatusCode != 200 {
		t.Errorf("cached login during the flood: %d", resp.StatusCode)
	}
	if n := bcrypts.Load(); n != authClientBurst {
		t.Errorf("cached login ran bcrypt (%d comparisons)", n)
	}
	// The global ration: a third client finds it spent by the first two
	// (the first login took one check of it).
	for i := 0; i < authClientBurst; i++ {
		from("127.0.0.3", "ops", fmt.Sprintf("other-%d", i))
	}
	resp, _ := from("127.0.0.4", "ops", "first")
	if resp.StatusCode != http.StatusTooManyRequests || bcrypts.Load() != authGlobalBurst-1 {
		t.Errorf("fresh client past the global ration: %d after %d comparisons, want 429 after %d", resp.StatusCode, bcrypts.Load(), authGlobalBurst-1)
	}
	// Rations refill with time.
	later := now.Add(10 * time.Second)
	clock.Store(&later)
	if resp, _ := from("127.0.0.2", "ops", "pw"); resp.StatusCode != 200 {
		t.Errorf("correct password once the ration refilled: %d", resp.StatusCode)
	}
}

func TestDefaultMaxConnectionsLeavesReserve(t *testing.T) {
	n, nofile := DefaultMaxConnections()
	if nofile == 0 {
		t.Skip("no RLIMIT_NOFILE here")
	}
	lim := min(nofile, 1<<20)
	if uint64(n) >= lim || lim-uint64(n) < min(256, lim/2) {
		t.Errorf("max connections %d leaves too little of %d descriptors", n, nofile)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "servq test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// An HTTP/2 connection (TLS from the web config) carrying a request is
// not closed to make room: HTTP/2 reports its connections' states through
// the same ConnState hook (active with a stream open, idle without).
func TestConnectionLimitKeepsBusyHTTP2(t *testing.T) {
	dir := t.TempDir()
	_, _, pool := selfSigned(t, dir)
	cfg := filepath.Join(dir, "web.yml")
	os.WriteFile(cfg, []byte("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"), 0o600)
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Write([]byte("done\n"))
	})
	s, base := start(t, mux, Options{ConfigFile: cfg, MaxConnections: 2})
	url := strings.Replace(base, "http://", "https://", 1) + "/block"
	c := &http.Client{Timeout: stuck, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- result{resp, err}
	}()
	select {
	case <-entered:
	case <-time.After(stuck):
		t.Fatal("the HTTP/2 request was not served")
	}
	for i := 0; i < 5; i++ { // each closes the previous one, not the busy one
		dial(t, base, "")
	}
	allAdmitted(t, s.conns, 6)
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("HTTP/2 request: %v", r.err)
	}
	if r.resp.StatusCode != 200 || r.resp.ProtoMajor != 2 {
		t.Errorf("answer %d over HTTP/%d, want 200 over HTTP/2", r.resp.StatusCode, r.resp.ProtoMajor)
	}
}

// allAdmitted waits until n connections were admitted (open or evicted).
func allAdmitted(t *testing.T, cl *connLimiter, n int) {
	t.Helper()
	deadline := time.Now().Add(stuck)
	for {
		open, evicted, refused := cl.counts()
		if open+int(evicted)+int(refused) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections admitted, want %d", open+int(evicted)+int(refused), n)
		}
		time.Sleep(time.Millisecond)
	}
}
