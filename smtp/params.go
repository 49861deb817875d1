package smtp

import (
	"fmt"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dsn"
)

// BodyType is the BODY parameter of MAIL FROM (RFC 6152 section 2). The
// zero value sends no BODY parameter, which means 7BIT.
//
// BINARYMIME (RFC 3030 section 3) is not offered: it needs the message
// sent as it is, and the client always makes line endings CRLF, so that
// no message can carry the bare line endings SMTP smuggling relies on.
type BodyType string

// The body types a client may declare.
const (
	// Body7Bit declares a message of 7-bit US-ASCII lines, the default.
	Body7Bit BodyType = "7BIT"
	// Body8BitMIME declares a message with 8-bit octets in its lines.
	Body8BitMIME BodyType = "8BITMIME"
)

// DSNReturn is the RET parameter of MAIL FROM (RFC 3461 section 4.3): how
// much of the message a failure notice returns. The zero value leaves it
// to the server.
type DSNReturn string

// The values of RET.
const (
	// RetFull returns the whole message with a notice.
	RetFull DSNReturn = "FULL"
	// RetHeaders returns only the message's header.
	RetHeaders DSNReturn = "HDRS"
)

// Notify is the NOTIFY parameter of RCPT TO (RFC 3461 section 4.1): the
// events that produce a delivery status notification, as a set. The zero
// value sends no NOTIFY, which leaves the server's default (failures and
// delays). NotifyNever goes alone: RFC 3461 section 4.1 forbids combining
// NEVER with any other value.
type Notify uint8

// The members of a Notify set.
const (
	NotifyNever Notify = 1 << iota
	NotifySuccess
	NotifyFailure
	NotifyDelay
)

// notifyNames are the keywords of the Notify members, in bit order.
var notifyNames = [...]string{"NEVER", "SUCCESS", "FAILURE", "DELAY"}

// String is the set as NOTIFY writes it: its keywords joined by commas.
// Bits that name no member are shown as a number, so that a bad set reads
// as one in an error.
func (n Notify) String() string {
	var kw []string
	for i, name := range notifyNames {
		if n&(1<<i) != 0 {
			kw = append(kw, name)
		}
	}
	if rest := n &^ (1<<len(notifyNames) - 1); rest != 0 {
		kw = append(kw, fmt.Sprintf("%#x", uint8(rest)))
	}
	return strings.Join(kw, ",")
}

// check reports why n cannot be sent, nil when it can.
func (n Notify) check() error {
	switch {
	case n&^(1<<len(notifyNames)-1) != 0:
		return mailsec.Errorf(mailsec.Config, "RCPT TO", nil, "NOTIFY set %s has bits that are not NEVER, SUCCESS, FAILURE or DELAY", n)
	case n&NotifyNever != 0 && n != NotifyNever:
		return mailsec.Errorf(mailsec.Config, "RCPT TO", nil, "NOTIFY=%s: NEVER cannot be combined with other values (RFC 3461 section 4.1)", n)
	}
	return nil
}

// ParseNotify reads a NOTIFY list as a person types it ("never", or some
// of "success", "failure", "delay" separated by commas; case does not
// matter) and refuses what RFC 3461 section 4.1 does not allow.
func ParseNotify(s string) (Notify, error) {
	var n Notify
	for _, kw := range strings.Split(s, ",") {
		kw = strings.TrimSpace(kw)
		found := false
		for i, name := range notifyNames {
			if strings.EqualFold(kw, name) {
				n |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, mailsec.Errorf(mailsec.Config, "RCPT TO", nil, "NOTIFY value %q is not NEVER, SUCCESS, FAILURE or DELAY", kw)
		}
	}
	return n, n.check()
}

// ParseDSNReturn reads a RET value as a person types it: "full" or "hdrs"
// (case does not matter; "headers" is taken for "hdrs").
func ParseDSNReturn(s string) (DSNReturn, error) {
	switch strings.ToUpper(s) {
	case "FULL":
		return RetFull, nil
	case "HDRS", "HEADERS":
		return RetHeaders, nil
	}
	return "", mailsec.Errorf(mailsec.Config, "MAIL FROM", nil, "RET must be FULL or HDRS, not %q", s)
}

// maxEnvID is the longest ENVID value, after xtext encoding (RFC 3461
// section 4.4).
const maxEnvID = 100

// bodyParam is the BODY parameter of MAIL FROM that o asks for, checked
// against what the server offers (ext) before anything is sent.
func (o *MailOptions) bodyParam(ext map[string]string) (string, error) {
	_, offered := ext["8BITMIME"]
	switch o.Body {
	case "":
		return "", nil
	case Body7Bit:
		// 7BIT is the default: declaring it only means something to a
		// server that knows the parameter.
		if offered {
			return " BODY=7BIT", nil
		}
		return "", nil
	case Body8BitMIME:
		if !offered {
			return "", mailsec.Errorf(mailsec.Unsupported, "MAIL FROM", nil,
				"the message has 8-bit content and the server does not offer 8BITMIME (RFC 6152); encode it as quoted-printable or base64")
		}
		return " BODY=8BITMIME", nil
	}
	return "", mailsec.Errorf(mailsec.Config, "MAIL FROM", nil, "BODY must be 7BIT or 8BITMIME, not %q", string(o.Body))
}

// RcptOptions are the DSN parameters of one RCPT TO (RFC 3461 section 4).
// The zero value sends none.
type RcptOptions struct {
	// Notify is the recipient's NOTIFY set (section 4.1).
	Notify Notify
	// ORcpt is the original recipient as it goes on the wire: the
	// address type, ";", and the address in xtext (section 4.2,
	// "rfc822;bob+2Bx@example.com"). A relay passes on what it received.
	ORcpt string
}

// param is the RCPT TO parameter string of r.
func (r RcptOptions) param() string {
	var p string
	if r.Notify != 0 {
		p = " NOTIFY=" + r.Notify.String()
	}
	if r.ORcpt != "" {
		p += " ORCPT=" + r.ORcpt
	}
	return p
}

// Check refuses what section 4 does not allow: a NOTIFY set with NEVER
// and more, an ORCPT without its address type, or one whose address is
// not xtext, which could also end the command line and start another.
// Send makes the same check before anything is sent.
func (r RcptOptions) Check() error {
	if err := r.Notify.check(); err != nil {
		return err
	}
	if r.ORcpt == "" {
		return nil
	}
	typ, addr, ok := strings.Cut(r.ORcpt, ";")
	if !ok || typ == "" || addr == "" || !dsn.IsXtext(typ) || !dsn.IsXtext(addr) || strings.ContainsRune(typ, '+') {
		return mailsec.Errorf(mailsec.Config, "RCPT TO", nil, "ORCPT %q is not \"type;xtext\" (RFC 3461 section 4.2)", r.ORcpt)
	}
	return nil
}

// dsnParams are the DSN parameters of MAIL FROM, and the function giving
// those of each RCPT TO, that o asks for (RFC 3461 section 4), checked
// before anything is sent: invalid values, then whether the server offers
// DSN.
func (o *MailOptions) dsnParams(ext map[string]string) (mail string, rcpt func(to string) string, err error) {
	none := func(string) string { return "" }
	perRcpt := false
	for _, r := range o.Recipients {
		perRcpt = perRcpt || r != (RcptOptions{})
	}
	if o.Ret == "" && o.EnvID == "" && o.Notify == 0 && !perRcpt {
		return "", none, nil
	}
	switch o.Ret {
	case "", RetFull, RetHeaders:
	default:
		return "", nil, mailsec.Errorf(mailsec.Config, "MAIL FROM", nil, "RET must be FULL or HDRS, not %q", string(o.Ret))
	}
	if err := o.Notify.check(); err != nil {
		return "", nil, err
	}
	for _, r := range o.Recipients {
		if err := r.Check(); err != nil {
			return "", nil, err
		}
	}
	envid := xtext(o.EnvID)
	for _, r := range o.EnvID {
		// RFC 3461 section 4.4: printable US-ASCII only, before encoding.
		if r < 0x20 || r > 0x7e {
			return "", nil, mailsec.Errorf(mailsec.Config, "MAIL FROM", nil, "ENVID %q has a character that is not printable US-ASCII (RFC 3461 section 4.4)", o.EnvID)
		}
	}
	if len(envid) > maxEnvID {
		return "", nil, mailsec.Errorf(mailsec.Config, "MAIL FROM", nil, "ENVID is %d characters once encoded, more than %d (RFC 3461 section 4.4)", len(envid), maxEnvID)
	}
	if _, ok := ext["DSN"]; !ok {
		if o.DSNIfOffered {
			return "", none, nil
		}
		return "", nil, mailsec.Errorf(mailsec.Unsupported, "MAIL FROM", nil, "DSN parameters given but the server does not offer DSN (RFC 3461)")
	}
	if o.Ret != "" {
		mail += " RET=" + string(o.Ret)
	}
	if o.EnvID != "" {
		mail += " ENVID=" + envid
	}
	all := RcptOptions{Notify: o.Notify}.param()
	return mail, func(to string) string {
		if r, ok := o.Recipients[to]; ok {
			return r.param()
		}
		return all
	}, nil
}
