package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/control"
	"github.com/mailsec/mailsec/server"
	"github.com/mailsec/mailsec/tlsrpt"
)

func init() { commands = append(commands, queueCmd()) }

// queueCmd is "mailsec queue list|show|retry|delete": the operators' view
// of the outbound queue. It asks the running server over its control
// socket, or opens the queue itself when no server runs.
func queueCmd() *cobra.Command {
	var configFile, dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Show and manage the outbound queue of mailsec serve",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&configFile, "config", "", "configuration of mailsec serve (default: the embedded one)")
	pf.StringVar(&dataDir, "data", "", "data directory (overrides data_dir)")
	pf.BoolVar(&asJSON, "json", false, "print JSON")
	// withQueue runs fn on the queue and closes it.
	withQueue := func(fn func(ctx context.Context, q queue.Admin) error) error {
		cfg, err := loadServeConfig(configFile, dataDir, "")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, err := control.Dial(server.ControlSocket(cfg.DataDir)); err == nil {
			return fn(ctx, c)
		}
		if _, err := os.Stat(server.QueueDir(cfg.DataDir)); err != nil && cfg.Queue.Backend == "embedded" {
			return mailsec.Errorf(mailsec.Config, "queue", err, "no queue in %s (has mailsec serve run with this data directory?)", cfg.DataDir)
		}
		q, err := server.OpenQueue(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer q.Close()
		return fn(ctx, q)
	}
	idArg := func(args []string) (queue.ID, error) {
		if !queue.ValidID(args[0]) {
			return "", usageError{fmt.Errorf("%q is not a queue ID", args[0])}
		}
		return queue.ID(args[0]), nil
	}
	// byID runs retry or delete on the message its argument names.
	byID := func(done string, op func(queue.Admin, context.Context, queue.ID) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args)
			if err != nil {
				return err
			}
			return withQueue(func(ctx context.Context, q queue.Admin) error {
				if err := op(q, ctx, id); err != nil {
					return err
				}
				if asJSON {
					printJSON(struct {
						OK bool     `json:"ok"`
						ID queue.ID `json:"id"`
					}{true, id})
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", id, done)
				}
				return nil
			})
		}
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the queued messages: id, size, age, attempts, next attempt, sender, recipients, last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withQueue(func(ctx context.Context, q queue.Admin) error {
				entries, err := q.List(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]queueItem, len(entries))
					for i, e := range entries {
						out[i] = itemOf(e)
					}
					printJSON(struct {
						OK       bool        `json:"ok"`
						Messages []queueItem `json:"messages"`
					}{true, out})
					return nil
				}
				printQueue(cmd.OutOrStdout(), entries)
				return nil
			})
		},
	}
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one message's envelope and every recipient's state and last outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args)
			if err != nil {
				return err
			}
			return withQueue(func(ctx context.Context, q queue.Admin) error {
				e, err := q.Get(ctx, id)
				if err != nil {
					return err
				}
				if asJSON {
					printJSON(struct {
						OK      bool         `json:"ok"`
						Message *queue.Entry `json:"message"`
					}{true, e})
					return nil
				}
				printEntry(cmd.OutOrStdout(), e)
				return nil
			})
		},
	}
	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Make a deferred message due now",
		Args:  cobra.ExactArgs(1),
		RunE:  byID("due now", queue.Admin.Retry),
	}
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Remove a message from the queue without a bounce",
		Args:  cobra.ExactArgs(1),
		RunE:  byID("deleted", queue.Admin.Delete),
	}
	var domain, day string
	report := &cobra.Command{
		Use:   "tls-report --domain DOMAIN [--date YYYY-MM-DD]",
		Short: "Print a day's TLS report (RFC 8460) for a recipient domain: sessions per TLS policy, failures by result type",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if domain == "" {
				return usageError{fmt.Errorf("--domain is required")}
			}
			cfg, err := loadServeConfig(configFile, dataDir, "")
			if err != nil {
				return err
			}
			when := time.Now().UTC()
			if day != "" {
				if when, err = time.Parse("2006-01-02", day); err != nil {
					return usageError{fmt.Errorf("--date %q is not YYYY-MM-DD", day)}
				}
			}
			st := &tlsrpt.Store{Dir: server.TLSReportDir(cfg.DataDir)}
			rep, err := st.Report(domain, when, cfg.Hostname, "postmaster@"+cfg.Hostname,
				when.Format("2006-01-02")+"."+domain+"@"+cfg.Hostname)
			if err != nil {
				return err
			}
			if asJSON {
				printJSON(rep)
				return nil
			}
			printTLSReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	report.Flags().StringVar(&domain, "domain", "", "recipient domain (policy domain)")
	report.Flags().StringVar(&day, "date", "", "UTC day (default: today)")
	cmd.AddCommand(list, show, retry, del, report)
	return cmd
}

// printTLSReport is the human view of a TLS report.
func printTLSReport(w io.Writer, rep *tlsrpt.Report) {
	fmt.Fprintf(w, "TLS report %s, %s to %s\n", rep.ReportID, rep.DateRange.Start.Format(time.RFC3339), rep.DateRange.End.Format(time.RFC3339))
	if len(rep.Policies) == 0 {
		fmt.Fprintln(w, "no sessions recorded")
	}
	for _, p := range rep.Policies {
		fmt.Fprintf(w, "policy %s for %s: %d successful, %d failed sessions\n", p.Policy.Type, p.Policy.Domain,
			p.Summary.TotalSuccessful, p.Summary.TotalFailure)
		for _, s := range p.Policy.Strings {
			fmt.Fprintf(w, "  %s\n", mailsec.Printable(s))
		}
		for _, f := range p.FailureDetails {
			fmt.Fprintf(w, "  %d x %s", f.FailedSessionCount, f.Result)
			if f.ReceivingMXHostname != "" {
				fmt.Fprintf(w, " at %s [%s]", mailsec.Printable(f.ReceivingMXHostname), f.ReceivingIP)
			}
			fmt.Fprintln(w)
		}
	}
}

// queueItem is one message of "queue list --json".
type queueItem struct {
	ID          queue.ID       `json:"id"`
	From        string         `json:"from"`
	Recipients  []string       `json:"recipients"`
	Size        int64          `json:"size"`
	Created     time.Time      `json:"created"`
	Attempts    int            `json:"attempts"`
	NextAttempt time.Time      `json:"next_attempt"`
	LastError   *queue.Outcome `json:"last_error,omitempty"`
	HeldBy      *queue.Holder  `json:"held_by,omitempty"`
}

func itemOf(e *queue.Entry) queueItem {
	it := queueItem{ID: e.ID, From: e.From, Size: e.Size, Created: e.Created, Attempts: e.Attempts,
		NextAttempt: e.NextAttempt, Recipients: []string{}, HeldBy: e.HeldBy}
	for _, k := range e.Pending() {
		it.Recipients = append(it.Recipients, e.Recipients[k].Addr)
	}
	if o := e.LastOutcome(); o != nil && (o.Reply == nil || o.Reply.Code >= 400) {
		it.LastError = o
	}
	return it
}

// printQueue is the table of "queue list", like Postfix's mailq: one
// block per message, the last error under it.
func printQueue(w io.Writer, entries []*queue.Entry) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSIZE\tAGE\tTRIES\tNEXT\tFROM\tTO")
	var total int64
	for _, e := range entries {
		it := itemOf(e)
		total += e.Size
		from := e.From
		if from == "" {
			from = "<>"
		}
		next := "now"
		if d := time.Until(e.NextAttempt); d > 0 {
			next = "in " + d.Round(time.Second).String()
		}
		if e.HeldBy != nil {
			next = "delivering (" + mailsec.Printable(e.HeldBy.Node) + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", e.ID, e.Size, time.Since(e.Created).Round(time.Second),
			e.Attempts, next, mailsec.Printable(from), mailsec.Printable(strings.Join(it.Recipients, ", ")))
		if it.LastError != nil {
			fmt.Fprintf(tw, "\t\t\t\t\t(%s)\t\n", mailsec.Printable(outcomeText(it.LastError)))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "-- %d messages, %d octets\n", len(entries), total)
}

// printEntry is "queue show ID".
func printEntry(w io.Writer, e *queue.Entry) {
	from := e.From
	if from == "" {
		from = "<>"
	}
	fmt.Fprintf(w, "id:           %s\nfrom:         %s\nsize:         %d octets\ncreated:      %s (%s ago)\nattempts:     %d\nnext attempt: %s\n",
		e.ID, mailsec.Printable(from), e.Size, e.Created.Format(time.RFC3339), time.Since(e.Created).Round(time.Second),
		e.Attempts, e.NextAttempt.Format(time.RFC3339))
	if e.AuthUser != "" {
		fmt.Fprintf(w, "submitted by: %s\n", mailsec.Printable(e.AuthUser))
	}
	if h := e.HeldBy; h != nil {
		fmt.Fprintf(w, "in delivery:  node %s, lease until %s\n", mailsec.Printable(h.Node), h.Until.Format(time.RFC3339))
	}
	for _, r := range e.Recipients {
		fmt.Fprintf(w, "recipient:    %s  %s\n", mailsec.Printable(r.Addr), r.Status)
		if o := r.Last; o != nil {
			fmt.Fprintf(w, "  last:       %s  %s\n", o.Time.Format(time.RFC3339), mailsec.Printable(outcomeText(o)))
			if o.TLS != nil {
				t := o.TLS
				fmt.Fprintf(w, "  tls:        policy %s, %s %s, certificate %s\n", t.Policy, orDash(t.Version), orDash(t.CipherSuite), orDash(t.Verdict))
			}
		}
	}
}

// outcomeText is one line about an attempt: where, and what was said.
func outcomeText(o *queue.Outcome) string {
	var b strings.Builder
	if o.Host != "" {
		b.WriteString(o.Host)
		if o.Addr != "" {
			b.WriteString(" [" + o.Addr + "]")
		}
		b.WriteString(": ")
	}
	switch {
	case o.Reply != nil:
		fmt.Fprintf(&b, "%d %s %s", o.Reply.Code, o.Reply.Enhanced, o.Reply.Text())
		if m := o.Reply.Channel.Mark(); m != "" {
			b.WriteString(" " + m)
		}
		if o.Detail != "" && o.Reply.Code >= 400 {
			b.WriteString(" (" + o.Detail + ")")
		}
	case o.Detail != "":
		b.WriteString(o.Detail)
	default:
		b.WriteString("ok")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
