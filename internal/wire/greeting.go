package wire

import (
	"errors"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// Foreign is another protocol's greeting, for GreetingHint: Prefix is how
// its first line starts, quoted as the reply parsers quote a bad line
// (`"+OK`), and Name is what the hint calls its server ("a POP3").
type Foreign struct {
	Prefix, Name string
}

// GreetingHint says what a failed greeting most often means: a port that
// expects TLS at once stays silent to a plain-text client, and a server of
// another protocol greets in its own way. proto names the client's protocol
// in the hint, implicitPort is its implicit-TLS port, and implicit says the
// session already is TLS (a silence then means something else). Other
// errors are returned as they are. SMTP and POP3 share it so that their
// hints read alike.
func GreetingHint(err error, implicit bool, proto string, implicitPort int, foreign ...Foreign) error {
	var me *mailsec.Error
	if !errors.As(err, &me) {
		return err
	}
	if me.Code == mailsec.Timeout && !implicit {
		return mailsec.Errorf(mailsec.Timeout, "greeting", me.Err,
			"the server sent no greeting; a port that expects TLS at once (implicit TLS, RFC 8314 section 3, as on %d) is silent like this, so try implicit TLS", implicitPort)
	}
	if me.Code == mailsec.Protocol {
		for _, f := range foreign {
			if strings.Contains(me.Detail, f.Prefix) {
				e := mailsec.Errorf(mailsec.Protocol, "greeting", nil, "this is %s server, not %s (%s)", f.Name, proto, me.Detail)
				e.Channel = me.Channel
				return e
			}
		}
	}
	return err
}

// DefaultSlowGreeting is how long a plain-text client waits in silence
// before it tells its SlowGreeting hook: a port that expects implicit TLS
// answers a plain client with silence, and a person waiting should hear so
// long before the greeting timeout.
const DefaultSlowGreeting = 3 * time.Second

// WatchGreeting calls slow once, from another goroutine, with after (or
// DefaultSlowGreeting when after is zero), if the greeting has not come by
// then; the wait itself goes on. The returned stop ends the watch and is
// called once the greeting is read. A nil slow watches nothing.
func WatchGreeting(after time.Duration, slow func(waited time.Duration)) (stop func()) {
	if slow == nil {
		return func() {}
	}
	if after <= 0 {
		after = DefaultSlowGreeting
	}
	t := time.AfterFunc(after, func() { slow(after) })
	return func() { t.Stop() }
}
