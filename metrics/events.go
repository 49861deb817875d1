package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/mailsec/mailsec"
)

// Events is a slog.Handler that counts the servers' login and retrieval
// records and passes every record on to the next handler as well. It
// relies on the records smtpd and pop3d write: "authenticated" with a
// mechanism, "authentication failed" with a mechanism or an *mailsec.Error
// whose Op is "AUTH <mech>", and pop3d's "disconnect" summary with
// "retrieved" and "retrieved_octets"; the listener comes from the
// session logger's "listener" attribute.
type Events struct {
	next     slog.Handler
	m        *Metrics
	listener string
}

// NewEvents returns a handler counting into m and forwarding to next.
func NewEvents(m *Metrics, next slog.Handler) *Events { return &Events{next: next, m: m} }

// Enabled reports true from Info up, where the counted records are, even
// when the next handler logs less.
func (h *Events) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

// Handle counts r when it is an event and forwards it.
func (h *Events) Handle(ctx context.Context, r slog.Record) error {
	h.observe(r)
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs remembers the listener attribute of session loggers.
func (h *Events) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	for _, a := range as {
		if a.Key == "listener" {
			c.listener = a.Value.String()
		}
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Events) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

func (h *Events) observe(r slog.Record) {
	switch r.Message {
	case "authenticated", "authentication failed", "disconnect":
	default:
		return
	}
	var mech string
	var retrieved, octets int64
	counted := false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "mechanism":
			mech = a.Value.String()
		case "err":
			var e *mailsec.Error
			if err, ok := a.Value.Any().(error); ok && mech == "" && errors.As(err, &e) {
				mech = strings.TrimPrefix(e.Op, "AUTH ")
			}
		case "retrieved":
			retrieved, counted = a.Value.Int64(), true
		case "retrieved_octets":
			octets = a.Value.Int64()
		}
		return true
	})
	switch r.Message {
	case "disconnect":
		if counted && retrieved > 0 {
			h.m.Retrieved(h.listener, int(retrieved), octets)
		}
	default:
		if mech == "" {
			mech = "unknown"
		}
		h.m.Auth(h.listener, strings.ToUpper(mech), r.Message == "authenticated")
	}
}
