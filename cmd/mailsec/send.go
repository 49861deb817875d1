package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/smtp"
)

func init() { commands = append(commands, sendCmd()) }

// sendResult is the --json output of send.
type sendResult struct {
	OK           bool                   `json:"ok"`
	Server       string                 `json:"server"`
	sessionFacts                        // tls_used, tls, security
	Recipients   []smtp.RecipientResult `json:"recipients,omitempty"`
	Reply        *mailsec.Reply         `json:"reply,omitempty"`
	Bytes        int64                  `json:"bytes,omitempty"`
	Checked      bool                   `json:"checked,omitempty"`
	Error        *jsonError             `json:"error,omitempty"`
}

func sendCmd() *cobra.Command {
	var (
		cf         connFlags
		spec       sendSpec
		check      bool
		requireTLS bool
	)
	cmd := &cobra.Command{
		Use:   "send --server HOST:PORT --from ADDR [--to ADDR]... [RCPT...] < message",
		Short: "Send one RFC 5322 message read from stdin (also as sendmail: -t, -i, -f, -F)",
		RunE: func(cmd *cobra.Command, args []string) error {
			res := &sendResult{}
			err := func() error {
				if err := cf.resolve(); err != nil {
					return err
				}
				if cmd.Flags().Changed("helo") {
					if err := checkHelo(spec.helo); err != nil {
						return err
					}
					cf.localName = spec.helo
				}
				fl := cmd.Flags()
				composing := fl.Changed("subject") || fl.Changed("body") || fl.Changed("attach")
				var stdin io.Reader = os.Stdin
				if check {
					// Nothing is sent, so no message is read: on a
					// terminal that would wait for one.
					stdin = strings.NewReader("")
				}
				p, err := spec.plan(cf.acctFrom, args, composing, stdin)
				if err != nil {
					return err
				}
				defer p.msg.Close()
				if len(p.rcpts) == 0 && !check {
					return usageError{fmt.Errorf("no recipients: give --to ADDR or recipients as arguments")}
				}
				res.Server = cf.server
				p.opts.RequireTLS = requireTLS
				return runSend(cmd.Context(), &cf, p.from, p.rcpts, check, p.opts, p.msg, res)
			}()
			res.OK = err == nil
			res.Error = toJSONError(err)
			if cf.json {
				printJSON(res)
			}
			return err
		},
	}
	cf.register(cmd.Flags(), "587")
	spec.register(cmd.Flags())
	cmd.Flags().BoolVar(&check, "check", false, "connect, secure and authenticate, then stop without sending")
	cmd.Flags().BoolVar(&requireTLS, "require-tls", false, "ask every server on the way to deliver only over verified TLS (REQUIRETLS, RFC 8689), or bounce")
	return cmd
}

// runSend sends the message in on the account's server; mo holds the
// transaction's options but for Size and Body, which the message gives.
func runSend(ctx context.Context, cf *connFlags, from string, rcpts []string, check bool, mo smtp.MailOptions, in io.Reader, res *sendResult) error {
	co, err := cf.common(ctx, "587", true)
	if err != nil {
		return err
	}
	res.Server = co.addr
	msg, size, eightBit, cleanup, err := spool(in)
	if err != nil {
		return err
	}
	defer cleanup()
	c, err := dialWithin(ctx, cf, smtp.Dial, co.addr, co.smtpOptions(cf))
	if err != nil {
		res.recordFailed(err)
		return err
	}
	defer c.Close()
	res.record(c, "the message travels")
	if check {
		res.Checked = true
		return c.Quit(ctx)
	}
	mo.Size = size
	if eightBit {
		mo.Body = smtp.Body8BitMIME
	}
	r, err := c.Send(ctx, from, rcpts, msg, &mo)
	if r != nil {
		res.Recipients, res.Reply, res.Bytes = r.Recipients, r.Reply, r.Bytes
	}
	if err != nil {
		return err
	}
	_ = c.Quit(ctx)
	return nil
}

// smtpOptions are the SMTP client options the flags describe.
func (c *commonOpts) smtpOptions(cf *connFlags) *smtp.Options {
	return &smtp.Options{TLSMode: c.mode, TLS: c.tls, AllowPlaintextAuth: cf.plaintextAuth,
		CommandTimeout: cf.timeout, Logger: c.logger, Transcript: cf.transcriptWriter(), LocalName: cf.localName,
		Dialer: c.dialer, Auth: c.auth, Mechanism: c.mech, SlowGreeting: slowGreeting}
}

// spool makes the message seekable and measured so that SIZE (RFC 1870) and
// BODY=8BITMIME (RFC 6152) can be declared up front: a regular file is used
// in place, anything else is copied to a private temporary file.
func spool(in io.Reader) (r io.Reader, size int64, eightBit bool, cleanup func(), err error) {
	cleanup = func() {}
	f, ok := in.(*os.File)
	if ok {
		if st, serr := f.Stat(); serr == nil && st.Mode().IsRegular() {
			eightBit, err = scan8bit(f)
			if err == nil {
				_, err = f.Seek(0, io.SeekStart)
			}
			if err != nil {
				return nil, 0, false, cleanup, mailsec.Errorf(mailsec.Data, "read message", err, "cannot read the message")
			}
			return f, st.Size(), eightBit, cleanup, nil
		}
	}
	tmp, err := privateTemp("spool message", "mailsec-msg-*")
	if err != nil {
		return nil, 0, false, cleanup, err
	}
	cleanup = func() { tmp.Close() }
	w := &eightBitWriter{w: tmp}
	size, err = io.Copy(w, in)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, 0, false, cleanup, mailsec.Errorf(mailsec.Data, "spool message", err, "cannot read the message")
	}
	return tmp, size, w.seen, cleanup, nil
}

func scan8bit(r io.Reader) (bool, error) {
	w := &eightBitWriter{w: io.Discard}
	_, err := io.Copy(w, r)
	return w.seen, err
}

// eightBitWriter notes whether any octet above 127 passes through.
type eightBitWriter struct {
	w    io.Writer
	seen bool
}

func (e *eightBitWriter) Write(p []byte) (int, error) {
	if !e.seen {
		for _, b := range p {
			if b >= 0x80 {
				e.seen = true
				break
			}
		}
	}
	return e.w.Write(p)
}
