package pop3

import (
	"context"
	"sort"
	"strings"

	"github.com/mailsec/mailsec/security"
)

// maxCapaLines bounds a CAPA response; RFC 2449 registers a dozen
// capabilities, so a server sending thousands is hostile.
const maxCapaLines = 256

// parseCapa turns CAPA lines (RFC 2449 section 5: a tag, then arguments
// separated by spaces) into a map from the upper-case tag to its arguments.
// Empty lines are ignored.
func parseCapa(lines []string) map[string][]string {
	capa := make(map[string][]string, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		tag := strings.ToUpper(f[0])
		capa[tag] = append(capa[tag], f[1:]...)
	}
	return capa
}

// queryCapa sends CAPA and replaces the cached list. A server without CAPA
// (a -ERR answer: RFC 1939 servers predate it) leaves the list empty and
// marks it absent, so Caps falls back to what RFC 1939 guarantees.
func (c *Client) queryCapa(ctx context.Context) error {
	c.capa, c.capaOK = nil, false
	rep, err := c.cmdMulti(ctx, "CAPA", "CAPA")
	if err != nil {
		return err
	}
	if !rep.OK {
		c.capa = map[string][]string{}
		return nil
	}
	var lines []string
	if err := c.multi(ctx, "CAPA", maxCapaLines, func(l string) error {
		lines = append(lines, l)
		return nil
	}); err != nil {
		return err
	}
	c.capa, c.capaOK = parseCapa(lines), true
	return nil
}

// Capabilities returns the CAPA lines of the current session state, sorted:
// after STLS only what the server announced under TLS. Nil means the server
// does not support CAPA.
func (c *Client) Capabilities() []string {
	if !c.capaOK {
		return nil
	}
	out := make([]string, 0, len(c.capa))
	for k, v := range c.capa {
		out = append(out, strings.TrimSpace(k+" "+strings.Join(v, " ")))
	}
	sort.Strings(out)
	return out
}

// Capability reports whether CAPA announced tag and returns its arguments.
func (c *Client) Capability(tag string) (bool, []string) {
	v, ok := c.capa[strings.ToUpper(tag)]
	return ok, v
}

// Caps implements security.Conn. Without CAPA the client assumes only
// USER/PASS, which nearly every RFC 1939 server has; STLS and SASL cannot be
// discovered then, so a mandatory STLS driver fails rather than guess.
func (c *Client) Caps() security.Caps {
	caps := security.Caps{}
	if !c.capaOK {
		caps.UserPass = true
		return caps
	}
	_, caps.StartTLS = c.capa["STLS"]
	_, caps.UserPass = c.capa["USER"]
	seen := map[string]bool{}
	for _, m := range c.capa["SASL"] {
		m = strings.ToUpper(m)
		if !seen[m] {
			seen[m] = true
			caps.Auth = append(caps.Auth, m)
		}
	}
	return caps
}

// Requery implements security.Conn: after STLS the capabilities learned in
// plain text are discarded and CAPA asked again (RFC 2595 section 4: the
// client MUST discard cached information about server capabilities).
func (c *Client) Requery(ctx context.Context) error { return c.queryCapa(ctx) }
