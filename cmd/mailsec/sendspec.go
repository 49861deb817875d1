package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/smtp"
)

// sendSpec holds the flags of send that say what to send and to whom:
// mailsec's own and the sendmail interface's (-f, -F, -t, -i, -oi, -B, -N,
// -R, -V, as msmtp and sendmail take them).
type sendSpec struct {
	from, fromName string
	to, cc, bcc    []string
	headers        []string
	readRcpts      bool
	helo           string
	notify, ret    string
	envid          string
	bodyType       string
	// ignoreDots and sendmailOpts are accepted and have no effect: a lone
	// dot never ends a message read to EOF, and sendmail's -o options
	// (-oem, -odi) govern a local queue mailsec does not have.
	ignoreDots   bool
	sendmailOpts []string
	compose      composeSpec
}

func (s *sendSpec) register(fs *pflag.FlagSet) {
	fs.StringVarP(&s.from, "from", "f", "", "sender: alice@example.com, <alice@example.com> or 'Alice <alice@example.com>'; default: the account's from, else the message's From")
	fs.StringVarP(&s.fromName, "from-name", "F", "", "display name of the sender, for a From field send writes (sendmail's -F)")
	fs.StringArrayVar(&s.to, "to", nil, "recipient, in the forms --from takes; repeatable")
	fs.StringArrayVar(&s.cc, "cc", nil, "recipient added to the Cc field; repeatable")
	fs.StringArrayVar(&s.bcc, "bcc", nil, "recipient that no header names; repeatable")
	fs.StringArrayVar(&s.headers, "header", nil, "header field 'Name: value' to add, replacing the message's fields of that name; repeatable")
	fs.BoolVarP(&s.readRcpts, "read-recipients", "t", false, "add the To, Cc and Bcc addresses of the message as recipients (Bcc fields are always dropped)")
	fs.StringVar(&s.helo, "helo", "", "name to send in EHLO (default: the account's domain, else the host name)")
	fs.StringVarP(&s.notify, "dsn-notify", "N", "", "ask for delivery status notifications: never, or some of success,failure,delay (RFC 3461); fails if the server does not offer DSN")
	fs.StringVarP(&s.ret, "dsn-return", "R", "", "what a failure notice returns: full or hdrs (RFC 3461)")
	fs.StringVarP(&s.envid, "envid", "V", "", "envelope identifier that delivery status notifications quote (RFC 3461)")
	fs.StringVarP(&s.bodyType, "body-type", "B", "", "7BIT or 8BITMIME (sendmail's -B); send declares 8BITMIME anyway when the message has 8-bit octets")
	fs.BoolVarP(&s.ignoreDots, "ignore-dots", "i", false, "accepted for sendmail's -i: a lone dot never ends the message, stdin is always read to its end")
	fs.StringArrayVarP(&s.sendmailOpts, "sendmail-option", "o", nil, "sendmail's -oX: -oi is -i, the others (-oem, -odi, ...) are accepted and ignored")
	fs.StringVar(&s.compose.subject, "subject", "", "compose a message with this subject instead of reading stdin")
	fs.StringVar(&s.compose.body, "body", "", "text of the composed message")
	fs.StringArrayVar(&s.compose.attach, "attach", nil, "file to attach to the composed message; repeatable")
}

// sendPlan is what the flags and the message say to send.
type sendPlan struct {
	from  string
	rcpts []string
	msg   *os.File
	opts  smtp.MailOptions
}

// plan checks the flags, reads or composes the message and settles the
// envelope. acctFrom is the account's sender; composing says that
// --subject, --body or --attach was given. The caller closes plan.msg.
func (s *sendSpec) plan(acctFrom string, args []string, composing bool, stdin io.Reader) (*sendPlan, error) {
	p := &sendPlan{}
	if err := s.mailOptions(&p.opts); err != nil {
		return nil, err
	}
	if s.from == "" {
		s.from = acctFrom
	}
	var sender nameAddr
	if s.from != "" {
		var err error
		if sender, err = parseMailbox("--from", s.from); err != nil {
			return nil, err
		}
	}
	if s.fromName != "" {
		if strings.ContainsFunc(s.fromName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, usageError{fmt.Errorf("--from-name %q: control characters cannot go into a From field", s.fromName)}
		}
		sender.name = s.fromName
	}
	to, err := parseMailboxes("--to", append(append([]string(nil), s.to...), args...))
	if err != nil {
		return nil, err
	}
	cc, err := parseMailboxes("--cc", s.cc)
	if err != nil {
		return nil, err
	}
	bcc, err := parseMailboxes("--bcc", s.bcc)
	if err != nil {
		return nil, err
	}
	fields, err := parseHeaderFields(s.headers)
	if err != nil {
		return nil, err
	}
	p.rcpts = append(append(addrs(to), addrs(cc)...), addrs(bcc)...)
	switch {
	case composing && s.readRcpts:
		return nil, usageError{fmt.Errorf("-t reads recipients from a message on stdin; it does not go with --subject/--body/--attach")}
	case composing:
		if sender.addr == "" {
			return nil, usageError{fmt.Errorf("--from is required (or \"from\" in the account)")}
		}
		cs := s.compose
		cs.from, cs.to, cs.cc, cs.fields = sender, to, cc, fields
		if p.msg, err = compose(cs); err != nil {
			return nil, err
		}
	default:
		edit := headerEdit{fields: fields, cc: cc, from: sender, readRcpts: s.readRcpts}
		facts, f, err := editMessage(stdin, edit)
		if err != nil {
			return nil, err
		}
		p.msg = f
		if s.readRcpts {
			p.rcpts = append(p.rcpts, facts.rcpts...)
		}
		if sender.addr == "" && facts.from != "" {
			// git send-email and PHP's mail() give the sender in the
			// message's From field only.
			if sender, err = fromField(facts.from); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	p.from = sender.addr
	if p.from == "" {
		p.msg.Close()
		return nil, usageError{fmt.Errorf("no sender: give --from (-f), \"from\" in the account, or a From field in the message")}
	}
	return p, nil
}

// mailOptions reads the DSN and body-type flags into o.
func (s *sendSpec) mailOptions(o *smtp.MailOptions) error {
	var err error
	if s.notify != "" {
		if o.Notify, err = smtp.ParseNotify(s.notify); err != nil {
			return usageError{fmt.Errorf("--dsn-notify: %v", err)}
		}
	}
	if s.ret != "" {
		if o.Ret, err = smtp.ParseDSNReturn(s.ret); err != nil {
			return usageError{fmt.Errorf("--dsn-return: %v", err)}
		}
	}
	o.EnvID = s.envid
	// -B is checked but not trusted: cron declares 8BITMIME for every
	// message, and BODY=8BITMIME would make a 7-bit message fail at a
	// server without 8BITMIME. The content scan (spool) decides.
	switch strings.ToUpper(s.bodyType) {
	case "", "7BIT", "8BITMIME":
	default:
		return usageError{fmt.Errorf("--body-type (-B) %q: 7BIT or 8BITMIME", s.bodyType)}
	}
	return nil
}

// checkHelo refuses an EHLO name that is not a domain or an address
// literal (RFC 5321 section 4.1.1.1), which might also end the command
// line and start another.
func checkHelo(name string) error {
	if err := smtp.CheckLocalName(name); err != nil {
		// The detail names the value and what is wrong with it.
		return usageError{fmt.Errorf("--helo %s", err.(*mailsec.Error).Detail)}
	}
	return nil
}
