package tlsconf

import (
	"testing"
	"time"
)

func TestRevocationCacheExpiry(t *testing.T) {
	c := NewRevocationCache(2)
	now := time.Now()
	c.put("none", CertStatus{Status: StatusGood})
	c.put("soon", CertStatus{Status: StatusGood, NextUpdate: now.Add(time.Minute)})
	c.put("later", CertStatus{Status: StatusRevoked, NextUpdate: now.Add(time.Hour)})
	if c.Len() != 2 {
		t.Fatalf("a status without nextUpdate was kept: %d entries", c.Len())
	}
	if _, ok := c.get("soon", now.Add(2*time.Minute)); ok {
		t.Error("a status past its nextUpdate was served")
	}
	if st, ok := c.get("later", now); !ok || st.Status != StatusRevoked {
		t.Errorf("get(later) = %+v, %v", st, ok)
	}
	// Full: the entry that expires first makes room.
	c.put("soon", CertStatus{Status: StatusGood, NextUpdate: now.Add(time.Minute)})
	c.put("third", CertStatus{Status: StatusGood, NextUpdate: now.Add(2 * time.Hour)})
	if _, ok := c.get("soon", now); ok || c.Len() != 2 {
		t.Errorf("eviction kept the entry expiring first (%d entries)", c.Len())
	}
}
