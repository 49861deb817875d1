package tlsconf

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"sync"
	"time"
)

// RevocationCache keeps good and revoked statuses, keyed by issuer and
// serial number, until the nextUpdate their source gave: a status without
// one is not kept, since its source promises nothing about tomorrow. It is
// safe for concurrent use.
type RevocationCache struct {
	mu  sync.Mutex
	max int
	m   map[string]CertStatus
}

// NewRevocationCache returns a cache of at most n entries (at least 1).
func NewRevocationCache(n int) *RevocationCache {
	return &RevocationCache{max: max(n, 1), m: make(map[string]CertStatus)}
}

var sharedCache = NewRevocationCache(4096)

// cacheKey names a certificate by its issuer's key and its serial number:
// serials are unique per issuer (RFC 5280 section 4.1.2.2).
func cacheKey(cert, issuer *x509.Certificate) string {
	sum := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]) + "/" + cert.SerialNumber.Text(16)
}

func (c *RevocationCache) get(key string, now time.Time) (CertStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[key]
	if ok && !now.Before(st.NextUpdate) {
		delete(c.m, key)
		return CertStatus{}, false
	}
	return st, ok
}

func (c *RevocationCache) put(key string, st CertStatus) {
	if st.NextUpdate.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		c.evict(time.Now())
	}
	c.m[key] = st
}

// evict drops the expired entries, or when none has expired the one that
// expires first.
func (c *RevocationCache) evict(now time.Time) {
	var first string
	for k, st := range c.m {
		if !now.Before(st.NextUpdate) {
			delete(c.m, k)
			continue
		}
		if first == "" || st.NextUpdate.Before(c.m[first].NextUpdate) {
			first = k
		}
	}
	if len(c.m) >= c.max {
		delete(c.m, first)
	}
}

// Len returns the number of statuses held.
func (c *RevocationCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
