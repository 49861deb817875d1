package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/fetch"
	"github.com/mailsec/mailsec/mailbox"
	"github.com/mailsec/mailsec/pop3"
)

func init() { commands = append(commands, fetchCmd()) }

// fetchSpec is what fetch is asked to do besides connecting.
type fetchSpec struct {
	maildir string
	mbox    string
	keep    bool
	delete  bool
	all     bool
	limit   int
}

// fetchResult is the --json output of fetch.
type fetchResult struct {
	OK           bool       `json:"ok"`
	Server       string     `json:"server"`
	Mailbox      string     `json:"mailbox,omitempty"`
	StateFile    string     `json:"state_file,omitempty"`
	sessionFacts            // tls_used, tls, security
	fetch.Result            // on_server, fetched, bytes, skipped, refused, deleted
	Error        *jsonError `json:"error,omitempty"`
}

func fetchCmd() *cobra.Command {
	var (
		cf   connFlags
		spec fetchSpec
	)
	cmd := &cobra.Command{
		Use:   "fetch --server HOST[:PORT] --user NAME (--maildir DIR | --mbox FILE)",
		Short: "Download new mail over POP3 into a Maildir or an mbox",
		Long: `Download mail over POP3 (POP3S on 995, else STLS) into a Maildir or mbox.

Only messages whose UIDL was not fetched before are downloaded (the state is
kept in MAILBOX.uidl); --all downloads everything. Each message is durable in
the mailbox before its UIDL is recorded, and recorded before it is deleted
on the server (--delete), so a crash loses nothing. A Maildir file name
carries the message's UIDL (",U=<base64url>"), so a crash duplicates
nothing there either. While a fetch runs, MAILBOX.uidl.lock is locked: a
second fetch into the same mailbox fails at once with exit status 75
(temporary failure; try again later). Besides the SASL
mechanisms, --auth takes "user" (USER/PASS) and "apop" (weak; only on
request); "auto" picks the strongest SASL mechanism, else USER/PASS.
No new mail is not an error: the exit status is 0.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (spec.maildir == "") == (spec.mbox == "") {
				return usageError{fmt.Errorf("give exactly one of --maildir DIR and --mbox FILE")}
			}
			if spec.keep && spec.delete {
				return usageError{fmt.Errorf("--keep and --delete exclude each other")}
			}
			if spec.limit < 0 {
				return usageError{fmt.Errorf("--limit must not be negative")}
			}
			res := &fetchResult{Server: cf.server}
			err := runFetch(cmd.Context(), &cf, &spec, res)
			res.OK = err == nil
			res.Error = toJSONError(err)
			if cf.json {
				printJSON(res)
			} else if err == nil {
				fmt.Fprintf(os.Stderr, "mailsec: fetched %d new message(s), %s; %d already fetched; %d deleted\n",
					res.Fetched, humanBytes(res.Bytes), res.Skipped, res.Deleted)
			}
			return err
		},
	}
	cf.register(cmd.Flags(), "995")
	spec.register(cmd.Flags())
	return cmd
}

// register adds fetch's own flags, besides the connection flags, to fs.
func (s *fetchSpec) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.maildir, "maildir", "", "deliver into this Maildir (created if missing)")
	fs.StringVar(&s.mbox, "mbox", "", "append to this mbox file (mboxrd, locked)")
	fs.BoolVar(&s.keep, "keep", false, "leave the messages on the server (the default)")
	fs.BoolVar(&s.delete, "delete", false, "delete the messages on the server once they are safely stored")
	fs.BoolVar(&s.all, "all", false, "download every message, also those fetched before")
	fs.IntVar(&s.limit, "limit", 0, "download at most N messages (0: no limit)")
}

// pop3Options are the POP3 client options the flags describe.
func (c *commonOpts) pop3Options(cf *connFlags) *pop3.Options {
	return &pop3.Options{TLSMode: c.mode, TLS: c.tls, AllowPlaintextAuth: cf.plaintextAuth,
		CommandTimeout: cf.timeout, Logger: c.logger, Transcript: cf.transcriptWriter(),
		Dialer: c.dialer, Auth: c.auth, Mechanism: c.mech, SlowGreeting: slowGreeting}
}

func openMailbox(spec *fetchSpec) (mailbox.Mailbox, error) {
	if spec.maildir != "" {
		return mailbox.OpenMaildir(spec.maildir)
	}
	return mailbox.OpenMbox(spec.mbox)
}

// runFetch opens the mailbox and its state (taking the lock, so a second
// fetch fails before connecting), dials, and runs the fetch engine.
func runFetch(ctx context.Context, cf *connFlags, spec *fetchSpec, res *fetchResult) error {
	co, err := cf.common(ctx, "995", true)
	if err != nil {
		return err
	}
	res.Server = co.addr
	if co.auth == nil {
		return usageError{fmt.Errorf("fetch needs --user (and a secret) to log in")}
	}
	mb, err := openMailbox(spec)
	if err != nil {
		return err
	}
	defer mb.Close()
	res.Mailbox = mb.Path()
	res.StateFile = mailbox.StatePath(mb.Path())
	// The maildrop is the user's on the host whatever the port or TLS
	// mode used to reach it, so the account leaves the port out.
	host, _, _ := net.SplitHostPort(co.addr)
	state, err := mailbox.OpenState(mb, co.auth.Username+"@"+host)
	if err != nil {
		return err
	}
	// Whatever happens, what was delivered is made durable and recorded
	// in the state file (fetch.Run does it on success).
	defer state.Close()
	c, err := dialWithin(ctx, cf, pop3.Dial, co.addr, co.pop3Options(cf))
	if err != nil {
		res.recordFailed(err)
		return err
	}
	defer c.Close()
	res.record(c, "mail travels")

	bar := &progress{w: os.Stderr}
	res.Result, err = fetch.Run(ctx, c, state, &fetch.Options{Delete: spec.delete, All: spec.all, Limit: spec.limit,
		Progress: bar, Refused: func(num int, err error) {
			fmt.Fprintf(os.Stderr, "mailsec: message %d: %s\n", num, mailsec.Printable(err.Error()))
		}})
	bar.finish()
	return err
}
