package relay

import (
	"time"

	"github.com/mailsec/mailsec/queue"
)

// Observer is told each recipient's outcome of each attempt, for metrics.
// It is called from the delivery goroutines, concurrently, and must return
// quickly.
type Observer interface {
	Delivery(d DeliveryInfo)
}

// DeliveryInfo is one recipient's outcome of one attempt.
type DeliveryInfo struct {
	// Result is "delivered", "deferred" or "bounced".
	Result string
	// TLS is the transport's security: "none" (plain text), "tls"
	// (encrypted, certificate not verified) or "verified"; "local" for
	// local delivery.
	TLS string
	// Latency is the time from the message's arrival to this outcome.
	Latency time.Duration
}

type nopObserver struct{}

func (nopObserver) Delivery(DeliveryInfo) {}

// tlsLevel names a TLS record's security for DeliveryInfo.
func tlsLevel(o *queue.Outcome) string {
	switch {
	case o == nil || o.TLS == nil:
		return "none"
	case o.TLS.Policy == "local":
		return "local"
	case o.TLS.Version == "":
		return "none"
	case o.TLS.Verdict == "verified":
		return "verified"
	}
	return "tls"
}
