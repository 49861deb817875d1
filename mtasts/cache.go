package mtasts

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/store"
)

// retryAfter is how long a failed fetch is remembered for the same TXT id
// before the policy host is tried again: section 3.3 suggests at least
// five minutes, so that a broken policy host is neither hammered by every
// message nor stalls each delivery for a whole fetch timeout.
const retryAfter = 5 * time.Minute

// Source tells where the policy of a Result comes from.
type Source string

// The sources of a Result.
const (
	// SourceCache: a cached, unexpired policy.
	SourceCache Source = "cache"
	// SourceFetched: a policy fetched by this call.
	SourceFetched Source = "fetched"
	// SourceNone: no policy applies; Result.Policy is nil.
	SourceNone Source = "none"
)

// Result is what Cache.Get found for a domain.
type Result struct {
	// Policy is the policy to apply, nil when there is none. Its Mode may
	// be ModeNone, which the domain publishes to withdraw an older policy
	// (section 8.3): apply nothing then, but it is cached all the same so
	// that it keeps the older policy from coming back. The Policy is a
	// copy the caller may keep.
	Policy *Policy
	// Source tells where Policy comes from.
	Source Source
	// Err is the discovery failure Get tolerated, for logs: a temporary
	// TXT lookup failure, a TXT record gone while a policy is cached
	// (which section 10.2 describes as what an attacker would do), or a
	// failed policy fetch. Policy is then the cached policy, if any.
	Err error
	// FailureType is the RFC 8460 result type of a failed policy fetch
	// (FailureFetchError, FailurePolicyInvalid or FailureWebPKIInvalid),
	// for TLS reports; "" when no fetch failed.
	FailureType string
}

// Cache keeps the policies of recipient domains between deliveries and,
// with Path, between runs. Caching is what makes MTA-STS resist an active
// attacker: one who later strips the TXT record or blocks the policy host
// still finds the policy applied until its max_age has passed (sections
// 5.1 and 10.2). The zero value is an in-memory cache using a zero
// Fetcher. A Cache is safe for concurrent use; it must not be copied
// after first use.
type Cache struct {
	// Fetcher looks up and fetches policies; nil means a zero Fetcher.
	Fetcher *Fetcher
	// Path, when set, is a JSON file the cache is kept in, rewritten
	// atomically (temporary file, fsync, rename) on every change. A
	// missing file is an empty cache; an unreadable or corrupt one makes
	// Get fail rather than forget policies silently.
	Path string
	// Now returns the current time; nil means time.Now. Tests set it to
	// make policies expire.
	Now func() time.Time

	mu       sync.Mutex
	loaded   bool
	dirty    bool // policies changed since the file was last written
	policies map[string]*Policy
	failures map[string]failure
}

// failure is a failed fetch remembered for retryAfter.
type failure struct {
	id  string
	at  time.Time
	err error
}

// Get returns the policy to apply to mail for domain, following section
// 5.1: it looks up the _mta-sts TXT record each time, so that a new policy
// id is seen at once, and
//
//   - uses the cached policy while it is unexpired and the id is
//     unchanged;
//   - fetches the policy when nothing valid is cached or the id changed,
//     and caches it, also when its mode is none;
//   - keeps using an unexpired cached policy when the TXT lookup fails,
//     when the TXT record has disappeared (section 3.1: its absence "is
//     not by itself sufficient to remove a sender's previously cached
//     policy") and when the fetch of a new one fails.
//
// A failed fetch is not retried for the same id for five minutes (section
// 3.3). Since Get always checks the TXT record, calling it before failing
// a message permanently satisfies section 5.1's requirement to first check
// for a new policy.
//
// Get returns an error only for an invalid domain, a canceled or expired
// ctx and a failure to read or write Path; discovery failures are in
// Result.Err. When only writing Path failed, the Result is returned along
// with the error and is valid, and the write is tried again on the next
// call.
func (c *Cache) Get(ctx context.Context, domain string) (*Result, error) {
	d, err := canonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	f := c.Fetcher
	if f == nil {
		f = &Fetcher{}
	}
	now := c.now()
	c.mu.Lock()
	err = c.loadLocked()
	cached := c.policies[d]
	if cached != nil && cached.Expired(now) {
		// Section 5.1 applies only policies within their max_age; an
		// expired one says nothing any more, whatever DNS says now.
		delete(c.policies, d)
		c.dirty = true
		cached = nil
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}

	id, err := f.LookupTXT(ctx, d)
	if ctx.Err() != nil {
		return nil, abandoned(ctx)
	}
	switch {
	case err != nil:
		res := &Result{Source: SourceNone}
		if cached != nil {
			res = &Result{Policy: clone(cached), Source: SourceCache}
		}
		// No record and nothing cached is the common case of a domain
		// without MTA-STS, not worth a log line.
		if cached != nil || !errors.Is(err, ErrNoPolicy) {
			res.Err = err
		}
		return c.finish(res, now)
	case cached != nil && cached.ID == id:
		return c.finish(&Result{Policy: clone(cached), Source: SourceCache}, now)
	}

	c.mu.Lock()
	last, failed := c.failures[d]
	c.mu.Unlock()
	var p *Policy
	if failed && last.id == id && now.Sub(last.at) < retryAfter {
		err = last.err
	} else {
		p, err = f.Fetch(ctx, d)
		if ctx.Err() != nil {
			return nil, abandoned(ctx)
		}
		failed = false
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if !failed {
			c.rememberLocked(d, failure{id: id, at: now, err: err})
		}
		res := &Result{Source: SourceNone, Err: err, FailureType: FailureType(err)}
		if cached != nil {
			res.Policy, res.Source = clone(cached), SourceCache
		}
		return res, c.saveLocked(now)
	}
	delete(c.failures, d)
	// Expiry runs on the cache's clock, and the id is the one the policy
	// was fetched under: a later change of it means a new policy.
	p.ID, p.Fetched = id, now
	c.policies[d] = p
	c.dirty = true
	return &Result{Policy: clone(p), Source: SourceFetched}, c.saveLocked(now)
}

// abandoned is the error of a Get whose ctx ended: the caller gave up, and
// no verdict on the policy should be drawn from the failures that caused.
func abandoned(ctx context.Context) error {
	code := mailsec.Timeout
	if errors.Is(ctx.Err(), context.Canceled) {
		code = mailsec.Canceled
	}
	return mailsec.Errorf(code, "mta-sts", ctx.Err(), "policy lookup abandoned")
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) finish(res *Result, now time.Time) (*Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return res, c.saveLocked(now)
}

// rememberLocked records a failed fetch and forgets those too old to
// matter, so that the map does not grow with every domain ever tried.
func (c *Cache) rememberLocked(domain string, fl failure) {
	for d, old := range c.failures {
		if fl.at.Sub(old.at) >= retryAfter {
			delete(c.failures, d)
		}
	}
	c.failures[domain] = fl
}

func clone(p *Policy) *Policy {
	q := *p
	q.MX = slices.Clone(p.MX)
	return &q
}

// cacheFile is the JSON form of the cache; max_age is in seconds, as in
// policies.
type cacheFile struct {
	Policies map[string]cacheEntry `json:"policies"`
}

type cacheEntry struct {
	Mode    Mode      `json:"mode"`
	MX      []string  `json:"mx,omitempty"`
	MaxAge  int64     `json:"max_age"`
	ID      string    `json:"id"`
	Fetched time.Time `json:"fetched"`
}

func (c *Cache) loadLocked() error {
	if c.loaded {
		return nil
	}
	c.policies = map[string]*Policy{}
	c.failures = map[string]failure{}
	if c.Path != "" {
		data, err := os.ReadFile(c.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return mailsec.Errorf(mailsec.Config, "mta-sts", err, "cannot read the policy cache")
		default:
			var file cacheFile
			if err := json.Unmarshal(data, &file); err != nil {
				return mailsec.Errorf(mailsec.Config, "mta-sts", err, "the policy cache %s is corrupt", c.Path)
			}
			for d, e := range file.Policies {
				c.policies[d] = &Policy{
					Version: Version,
					Mode:    e.Mode,
					MX:      e.MX,
					MaxAge:  time.Duration(e.MaxAge) * time.Second,
					ID:      e.ID,
					Fetched: e.Fetched,
				}
			}
		}
	}
	c.loaded = true
	return nil
}

// saveLocked writes the cache to Path if it changed, leaving out expired
// policies. The file is replaced by rename only once the new content is
// on disk, so that a crash leaves either the old or the new cache, never
// a truncated one that would lose every policy.
func (c *Cache) saveLocked(now time.Time) error {
	if !c.dirty {
		return nil
	}
	if c.Path == "" {
		c.dirty = false
		return nil
	}
	file := cacheFile{Policies: map[string]cacheEntry{}}
	for d, p := range c.policies {
		if p.Expired(now) {
			delete(c.policies, d)
			continue
		}
		file.Policies[d] = cacheEntry{Mode: p.Mode, MX: p.MX, MaxAge: int64(p.MaxAge / time.Second), ID: p.ID, Fetched: p.Fetched}
	}
	data, err := json.MarshalIndent(file, "", "\t")
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "mta-sts", err, "cannot encode the policy cache")
	}
	if err := store.WriteFile(c.Path, data); err != nil {
		return mailsec.Errorf(mailsec.Config, "mta-sts", err, "cannot write the policy cache")
	}
	c.dirty = false
	return nil
}
