package webserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Limits of the basic-auth password checks. A bcrypt comparison costs
// ~100 ms of CPU by design, so password guessing is a cheap way to burn
// servq's CPU: checks that are not answered from the cache of successful
// logins are rationed per client and globally, one at a time, and a client
// over its ration gets 429 with Retry-After without any bcrypt run.
const (
	authClientBurst = 10              // uncached checks a client may make at once
	authClientRate  = rate.Limit(0.5) // then one every 2 s
	authGlobalBurst = 20              // all clients together
	authGlobalRate  = rate.Limit(4)   // ≈ 0.4 CPU at ~100 ms a check
	authMaxClients  = 10000           // clients whose ration is remembered
	authCacheSize   = 256             // successful logins remembered
)

// basicAuth checks exporter-toolkit basic_auth_users.
type basicAuth struct {
	now     func() time.Time
	compare func(hash, password []byte) error // bcrypt; counted in tests

	bcryptMu sync.Mutex // one bcrypt at a time: at most one core

	mu      sync.Mutex
	ok      map[[32]byte]struct{} // digests of user, hash and password that matched
	clients map[string]*rate.Limiter
	global  *rate.Limiter

	dummyOnce sync.Once
	dummy     []byte // hash compared for unknown users, so timing does not tell them
}

func newBasicAuth(now func() time.Time) *basicAuth {
	return &basicAuth{
		now:     now,
		compare: bcrypt.CompareHashAndPassword,
		ok:      map[[32]byte]struct{}{},
		clients: map[string]*rate.Limiter{},
		global:  rate.NewLimiter(authGlobalRate, authGlobalBurst),
	}
}

type authResult int

const (
	authOK authResult = iota
	authDenied
	authThrottled
)

// check verifies r's credentials against users (user → bcrypt hash). When
// throttled, retry is how long the client should wait.
func (a *basicAuth) check(r *http.Request, users map[string]string) (res authResult, retry time.Duration) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return authDenied, 0
	}
	hash, known := users[user]
	// The cache keeps a digest, not the password, and only of successes:
	// failures must not evict the entries of legitimate clients.
	key := digest(user, hash, pass)
	a.mu.Lock()
	_, cached := a.ok[key]
	a.mu.Unlock()
	if cached && known {
		return authOK, 0
	}
	if wait, ok := a.reserve(clientKey(r.RemoteAddr)); !ok {
		return authThrottled, wait
	}
	if !known {
		hash = string(a.dummyHash())
	}
	a.bcryptMu.Lock()
	err := a.compare([]byte(hash), []byte(pass))
	a.bcryptMu.Unlock()
	if err != nil || !known {
		return authDenied, 0
	}
	a.mu.Lock()
	if len(a.ok) >= authCacheSize {
		for k := range a.ok { // any one: a stale entry costs one bcrypt
			delete(a.ok, k)
			break
		}
	}
	a.ok[key] = struct{}{}
	a.mu.Unlock()
	return authOK, 0
}

// reserve takes one check from the client's and the global ration.
func (a *basicAuth) reserve(client string) (time.Duration, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.clients[client]
	if lim == nil {
		if len(a.clients) >= authMaxClients {
			a.forgetFullLocked(now)
		}
		lim = rate.NewLimiter(authClientRate, authClientBurst)
		a.clients[client] = lim
	}
	rc := lim.ReserveN(now, 1)
	if d := rc.DelayFrom(now); d > 0 {
		rc.CancelAt(now)
		return d, false
	}
	rg := a.global.ReserveN(now, 1)
	if d := rg.DelayFrom(now); d > 0 {
		rg.CancelAt(now)
		rc.CancelAt(now)
		return d, false
	}
	return 0, true
}

// forgetFullLocked drops the clients whose ration is whole again (they are
// as if new); if none is, it starts over, which the global ration bounds.
func (a *basicAuth) forgetFullLocked(now time.Time) {
	for k, l := range a.clients {
		if l.TokensAt(now) >= authClientBurst {
			delete(a.clients, k)
		}
	}
	if len(a.clients) >= authMaxClients {
		clear(a.clients)
	}
}

func (a *basicAuth) dummyHash() []byte {
	a.dummyOnce.Do(func() {
		pw := make([]byte, 16)
		rand.Read(pw)
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw)), bcrypt.DefaultCost)
	})
	return a.dummy
}

func digest(parts ...string) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// clientKey is the client a ration belongs to: its IP address, or its /64
// for IPv6, where one client commonly holds a whole /64.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}
