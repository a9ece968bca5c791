// Package webserver is servq's HTTP server: exporter-toolkit's web config
// (TLS, basic auth, headers, rate limit) with the limits a server facing a
// hostile network needs: read, write and idle timeouts, a bound on open
// connections that keeps file descriptors for the collectors and the
// store, request body limits, throttled password checks, and webhooks
// authenticated by their signatures rather than the basic-auth password.
package webserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/time/rate"
)

// WebhooksPrefix is the path under which webhook collectors receive.
const WebhooksPrefix = "/webhooks/"

// Webhook authentication modes.
const (
	// WebhooksSignature: deliveries are authenticated by their signatures
	// only; basic auth is not asked of /webhooks/ (vendors cannot send it).
	WebhooksSignature = "signature"
	// WebhooksBasicAndSignature: basic auth is required on /webhooks/ too.
	WebhooksBasicAndSignature = "basic+signature"
)

// Defaults of the flags.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxRequestBody    = 1 << 20
)

// Options configure a Server.
type Options struct {
	ListenAddresses []string
	SystemdSocket   bool
	ConfigFile      string // exporter-toolkit web config; "" for plain HTTP without auth

	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// sent a byte at a time is cut off after it.
	ReadTimeout time.Duration
	// WriteTimeout bounds a response from the end of its request's
	// headers (/metrics of 100k series is served from a cache in tens of
	// milliseconds; a pprof CPU profile lasts as long as it asks).
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections waiting for a request.
	IdleTimeout time.Duration
	// MaxConnections bounds open connections; 0 derives it from
	// RLIMIT_NOFILE (DefaultMaxConnections).
	MaxConnections int
	// MaxRequestBody bounds every request body, in bytes.
	MaxRequestBody int64
	// WebhooksAuth is WebhooksSignature (default) or WebhooksBasicAndSignature.
	WebhooksAuth string

	Logger     *slog.Logger
	Registerer prometheus.Registerer // for servq_web_* metrics; nil: none
	Now        func() time.Time      // clock of the password-check rations
}

// Server serves one handler on the configured listeners.
type Server struct {
	opt       Options
	srv       *http.Server
	conns     *connLimiter
	auth      *basicAuth
	webCfg    *webConfig
	listeners []net.Listener
	throttled prometheus.Counter
}

// DefaultMaxConnections is the connection limit derived from the soft
// RLIMIT_NOFILE: a quarter of it, and at least 256 descriptors, stay for
// the collectors' files and sockets, the store and the process itself.
func DefaultMaxConnections() (limit int, nofile uint64) {
	nofile, ok := openFileLimit()
	if !ok || nofile == 0 {
		return 1024, 0
	}
	n := min(nofile, 1<<20) // RLIM_INFINITY is not a useful budget
	reserve := max(256, n/4)
	if n <= 2*reserve {
		return max(8, int(n/2)), nofile
	}
	return int(n - reserve), nofile
}

// New checks the options and the web config file.
func New(h http.Handler, opt Options) (*Server, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	switch opt.WebhooksAuth {
	case "":
		opt.WebhooksAuth = WebhooksSignature
	case WebhooksSignature, WebhooksBasicAndSignature:
	default:
		return nil, fmt.Errorf("--web.webhooks-auth: %q is neither %q nor %q", opt.WebhooksAuth, WebhooksSignature, WebhooksBasicAndSignature)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"read-header-timeout", &opt.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"read-timeout", &opt.ReadTimeout, DefaultReadTimeout},
		{"write-timeout", &opt.WriteTimeout, DefaultWriteTimeout},
		{"idle-timeout", &opt.IdleTimeout, DefaultIdleTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("--web.%s: must not be negative", d.name)
		case *d.v == 0: // Go's 0 means no timeout at all: never what is wanted here
			*d.v = d.def
		}
	}
	if opt.MaxRequestBody <= 0 {
		opt.MaxRequestBody = DefaultMaxRequestBody
	}
	if opt.MaxConnections < 0 {
		return nil, errors.New("--web.max-connections: must not be negative")
	}
	if opt.MaxConnections == 0 {
		var nofile uint64
		opt.MaxConnections, nofile = DefaultMaxConnections()
		opt.Logger.Info("connection limit derived from the open-file limit", "max_connections", opt.MaxConnections, "nofile", nofile)
	}
	s := &Server{opt: opt, conns: newConnLimiter(opt.MaxConnections), auth: newBasicAuth(opt.Now)}
	if opt.ConfigFile != "" {
		s.webCfg = &webConfig{path: opt.ConfigFile}
		if _, err := s.webCfg.get(); err != nil {
			return nil, err
		}
	}
	s.srv = &http.Server{
		Handler:           s.wrap(h),
		ReadHeaderTimeout: opt.ReadHeaderTimeout,
		ReadTimeout:       opt.ReadTimeout,
		WriteTimeout:      opt.WriteTimeout,
		IdleTimeout:       opt.IdleTimeout,
		ConnState:         s.conns.connState,
		ErrorLog:          slog.NewLogLogger(opt.Logger.Handler(), slog.LevelDebug),
	}
	if opt.Registerer != nil {
		s.register(opt.Registerer)
	}
	return s, nil
}

func (s *Server) register(r prometheus.Registerer) {
	open := func() float64 { n, _, _ := s.conns.counts(); return float64(n) }
	evicted := func() float64 { _, n, _ := s.conns.counts(); return float64(n) }
	refused := func() float64 { _, _, n := s.conns.counts(); return float64(n) }
	s.throttled = prometheus.NewCounter(prometheus.CounterOpts{Name: "servq_web_auth_throttled_total",
		Help: "Basic-auth checks answered 429 without a password comparison, the client or all clients being over their ration."})
	r.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servq_web_connections", Help: "Open HTTP connections."}, open),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "servq_web_connections_max", Help: "Limit of open HTTP connections (--web.max-connections)."},
			func() float64 { return float64(s.opt.MaxConnections) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "servq_web_connections_evicted_total",
			Help: "Connections waiting for a request closed at the connection limit to admit a new one."}, evicted),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "servq_web_connections_refused_total",
			Help: "Connections closed on arrival at the connection limit, every open one being in a request."}, refused),
		s.throttled,
	)
}

// MaxConnections is the connection limit in force.
func (s *Server) MaxConnections() int { return s.opt.MaxConnections }

// Listen opens the listeners (addresses, vsock:// addresses or systemd's
// sockets).
func (s *Server) Listen() error {
	if s.opt.SystemdSocket {
		ls, err := activation.Listeners()
		if err != nil {
			return err
		}
		if len(ls) == 0 {
			return errors.New("--web.systemd-socket: no socket activation file descriptors found")
		}
		s.listeners = ls
		return nil
	}
	if len(s.opt.ListenAddresses) == 0 {
		return errors.New("no --web.listen-address")
	}
	for _, a := range s.opt.ListenAddresses {
		var l net.Listener
		var err error
		if strings.HasPrefix(a, "vsock://") {
			l, err = listenVsock(a)
		} else {
			l, err = net.Listen("tcp", a)
		}
		if err != nil {
			s.Close()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	return nil
}

func listenVsock(a string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(a, "vsock://"))
	if err != nil {
		return nil, fmt.Errorf("--web.listen-address %s: %w", a, err)
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--web.listen-address %s: bad port: %w", a, err)
	}
	return vsock.Listen(uint32(p), nil)
}

// Addrs are the listeners' addresses (after Listen).
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Close closes the listeners (for a Listen that is not followed by Serve).
func (s *Server) Close() {
	for _, l := range s.listeners {
		l.Close()
	}
}

// Serve serves on every listener until Shutdown (http.ErrServerClosed) or
// the first failure.
func (s *Server) Serve() error {
	tlsCfg, http2, err := s.tlsConfig()
	if err != nil {
		return err
	}
	if tlsCfg != nil && !http2 {
		s.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	s.srv.TLSConfig = tlsCfg
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		s.opt.Logger.Info("Listening on", "address", l.Addr().String(), "tls", tlsCfg != nil,
			"max_connections", s.opt.MaxConnections, "webhooks_auth", s.opt.WebhooksAuth)
		ll := s.conns.listener(l)
		go func() {
			if tlsCfg != nil {
				errc <- s.srv.ServeTLS(ll, "", "")
			} else {
				errc <- s.srv.Serve(ll)
			}
		}()
	}
	return <-errc
}

// Shutdown stops accepting, closes idle connections and waits for the
// requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// tlsConfig is the TLS config of the web config file, or nil for plain
// HTTP. Certificates are read again for each new connection, as
// exporter-toolkit does, so a renewed certificate needs no restart.
func (s *Server) tlsConfig() (*tls.Config, bool, error) {
	if s.webCfg == nil {
		return nil, false, nil
	}
	c, err := s.webCfg.get()
	if err != nil {
		return nil, false, err
	}
	if !c.TLSConfig.IsEnabled() {
		return nil, false, nil
	}
	cfg, err := web.ConfigToTLSConfig(&c.TLSConfig)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", s.webCfg.path, err)
	}
	protos := []string{"http/1.1"}
	if c.HTTPConfig.HTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	cfg.NextProtos = protos
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := s.webCfg.get()
		if err != nil {
			return nil, err
		}
		cfg, err := web.ConfigToTLSConfig(&c.TLSConfig)
		if err != nil {
			return nil, err
		}
		cfg.NextProtos = protos
		return cfg, nil
	}
	return cfg, c.HTTPConfig.HTTP2, nil
}

// wrap puts the web config's headers and rate limit, the body limit and
// basic auth in front of h.
func (s *Server) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var users map[string]string
		if s.webCfg != nil {
			c, err := s.webCfg.get()
			if err != nil {
				// Fail closed: without its config, auth cannot be checked.
				s.opt.Logger.Error("web config", "err", err)
				http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
				return
			}
			if c.limiter != nil && !c.limiter.Allow() {
				http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
				return
			}
			for k, v := range c.HTTPConfig.Header {
				w.Header().Set(k, v)
			}
			users = c.users
		}
		// A body over the limit is refused before anything reads it; a
		// body without a length is cut at the limit (the handler reading
		// it gets an *http.MaxBytesError, which webhooks answer 413).
		if r.ContentLength > s.opt.MaxRequestBody {
			w.Header().Set("Connection", "close")
			http.Error(w, "request body larger than "+strconv.FormatInt(s.opt.MaxRequestBody, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxRequestBody)
		if len(users) > 0 && !s.webhookWithoutBasic(r) {
			switch res, wait := s.auth.check(r, users); res {
			case authThrottled:
				if s.throttled != nil {
					s.throttled.Inc()
				}
				w.Header().Set("Retry-After", retryAfter(wait))
				http.Error(w, "too many password checks, retry later", http.StatusTooManyRequests)
				return
			case authDenied:
				w.Header().Set("WWW-Authenticate", `Basic realm="servq"`)
				http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// webhookWithoutBasic: in signature mode, a request for a webhook needs no
// password. The path is cleaned first, so /webhooks/../metrics is
// /metrics and needs the password.
func (s *Server) webhookWithoutBasic(r *http.Request) bool {
	if s.opt.WebhooksAuth != WebhooksSignature {
		return false
	}
	p := path.Clean(r.URL.Path)
	return strings.HasPrefix(p, WebhooksPrefix)
}

// webConfig is the exporter-toolkit web config file, read again when it
// changes (users and certificates can be changed without a restart, as
// with exporter-toolkit; a stat per request rather than a read).
type webConfig struct {
	path string

	mu   sync.Mutex
	mod  time.Time
	size int64
	cfg  *loadedConfig
}

type loadedConfig struct {
	web.Config
	users   map[string]string
	limiter *rate.Limiter
}

func (wc *webConfig) get() (*loadedConfig, error) {
	fi, err := os.Stat(wc.path)
	if err != nil {
		return nil, fmt.Errorf("--web.config.file: %w", err)
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.cfg != nil && fi.ModTime().Equal(wc.mod) && fi.Size() == wc.size {
		return wc.cfg, nil
	}
	// web.Validate checks what exporter-toolkit checks: the YAML, the
	// bcrypt hashes, the headers and the TLS files.
	if err := web.Validate(wc.path); err != nil {
		return nil, fmt.Errorf("%s: %w", wc.path, err)
	}
	b, err := os.ReadFile(wc.path)
	if err != nil {
		return nil, fmt.Errorf("--web.config.file: %w", err)
	}
	c := &loadedConfig{Config: web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}}
	if err := yaml.UnmarshalStrict(b, &c.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", wc.path, err)
	}
	c.TLSConfig.SetDirectory(filepath.Dir(wc.path))
	c.users = make(map[string]string, len(c.Users))
	for u, h := range c.Users {
		c.users[u] = string(h)
	}
	if rl := c.RateLimiterConfig; rl.Interval != 0 {
		c.limiter = rate.NewLimiter(rate.Every(rl.Interval), rl.Burst)
	}
	wc.cfg, wc.mod, wc.size = c, fi.ModTime(), fi.Size()
	return c, nil
}
