package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/server"
)

func init() { commands = append(commands, serveCmd()) }

// serveCmd is "mailsec serve": the SMTP (and POP3) server.
func serveCmd() *cobra.Command {
	var configFile, dataDir, domain, logLevel string
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--data DIR] [--domain NAME]",
		Short: "Run the mail server (SMTP: MX, submission, SMTPS; POP3: STLS, POP3S) with a strict STARTTLS policy",
		Long: "Runs the mail server. Without --config the embedded default applies: data in\n" +
			"./mailsec-data, domain localhost, listeners on 127.0.0.1 (2525 MX, 2587 submission,\n" +
			"2465 SMTPS, 2110 POP3 with STLS, 2995 POP3S). --print-config shows it; its metrics\n" +
			"key turns on Prometheus metrics on a loopback port. SIGHUP reloads the TLS\n" +
			"certificate; SIGINT/SIGTERM shut down gracefully.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printConfig {
				_, err := io.WriteString(cmd.OutOrStdout(), server.DefaultConfig())
				return err
			}
			cfg, err := loadServeConfig(configFile, dataDir, domain)
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			srv, err := server.Start(cfg, log)
			if err != nil {
				return err
			}
			printBanner(cmd.OutOrStdout(), srv.Info(), sameConfig(configFile, domain))
			return waitForSignals(srv, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "TOML configuration file (default: the embedded one)")
	f.StringVar(&dataDir, "data", "", "data directory (overrides data_dir)")
	f.StringVar(&domain, "domain", "", "local mail domain (replaces domains)")
	f.StringVar(&logLevel, "log-level", "info", "debug|info|warn|error")
	f.BoolVar(&printConfig, "print-config", false, "print the embedded default configuration and exit")
	return cmd
}

func loadServeConfig(file, dataDir, domain string) (*server.Config, error) {
	cfg := server.Default()
	if file != "" {
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, mailsec.Errorf(mailsec.Config, "serve", err, "cannot read config")
		}
		if cfg, err = server.Parse(string(text)); err != nil {
			return nil, err
		}
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if domain != "" {
		cfg.Domains = []string{domain}
	}
	return cfg, nil
}

// sameConfig is what "mailsec users add" needs, besides --data, to see the
// configuration serve runs with: its domains name the new user's addresses.
func sameConfig(configFile, domain string) string {
	var s string
	if configFile != "" {
		s += " --config " + configFile
	}
	if domain != "" {
		s += " --domain " + domain
	}
	return s
}

// printBanner says where everything is and how to try it, with the first
// local domain in the example addresses; usersFlags are the flags that
// show users add serve's configuration (see sameConfig).
func printBanner(w io.Writer, in server.Info, usersFlags string) {
	fmt.Fprintf(w, "mailsec serve\n  data dir:   %s\n  users file: %s\n  mailboxes:  %s/<user>/ (Maildir)\n",
		in.DataDir, in.UsersFile, in.MailDir)
	if in.CAFile != "" {
		fmt.Fprintf(w, "  local CA:   %s (trust this to verify the server)\n", in.CAFile)
	}
	fmt.Fprintf(w, "  cert:       %s\n  listeners:\n", in.CertFile)
	first := map[string]string{} // kind -> address of its first listener
	for _, l := range in.Listeners {
		policy := l.TLS
		switch l.Kind {
		case "smtps", "pop3s":
			policy = "implicit TLS"
		case "submission":
			policy = "STARTTLS required, AUTH required"
		case "pop3":
			policy = "STLS required before login"
		case "mx":
			if policy == "" {
				policy = "may"
			}
			policy = "STARTTLS " + policy
		}
		if first[l.Kind] == "" {
			first[l.Kind] = l.Addr
		}
		fmt.Fprintf(w, "    %-11s %-22s %-11s %s\n", l.Name, l.Addr, l.Kind, policy)
	}
	for _, l := range in.Skipped {
		fmt.Fprintf(w, "    %-11s %-22s %-11s (not available in this build)\n", l.Name, l.Address, l.Kind)
	}
	if in.MetricsAddr != "" {
		fmt.Fprintf(w, "  metrics:    http://%s/metrics\n", in.MetricsAddr)
	}
	if in.QueueDir != "" {
		fmt.Fprintf(w, "  queue:      %s (outbound mail of authenticated users; mailsec queue list --data %s)\n", in.QueueDir, in.DataDir)
	}
	if len(first) == 0 {
		return
	}
	ca := in.CAFile
	if ca == "" {
		ca = "<your CA file>"
	}
	addr := "alice@localhost"
	if len(in.Domains) > 0 {
		addr = "alice@" + in.Domains[0]
	}
	fmt.Fprintf(w, "\nTry it:\n  mailsec users add alice --data %s%s\n", in.DataDir, usersFlags)
	if a := first["submission"]; a != "" {
		fmt.Fprintf(w, "  swaks --server %s --tls --tls-ca-path %s --auth PLAIN --auth-user alice --to %s\n", a, ca, addr)
		fmt.Fprintf(w, "  MAILSEC_PASSWORD=... mailsec send --server %s --ca-file %s --user alice --from %s --to %s --subject hi --body hello\n", a, ca, addr, addr)
	}
	if a := first["smtps"]; a != "" {
		fmt.Fprintf(w, "  curl --url smtps://%s --cacert %s --user alice --mail-from %s --mail-rcpt %s --crlf --upload-file MESSAGE\n", a, ca, addr, addr)
	}
	if a := first["mx"]; a != "" {
		fmt.Fprintf(w, "  swaks --server %s --tls --tls-ca-path %s --to %s   (MX: no AUTH)\n", a, ca, addr)
	}
	if a := first["pop3s"]; a != "" {
		fmt.Fprintf(w, "  MAILSEC_PASSWORD=... mailsec fetch --server %s --tls implicit --ca-file %s --user alice --maildir ./inbox\n", a, ca)
		fmt.Fprintf(w, "  curl --url pop3s://%s/1 --cacert %s --user alice   (POP3S: retrieve message 1)\n", a, ca)
	}
	if a := first["pop3"]; a != "" {
		fmt.Fprintf(w, "  openssl s_client -quiet -starttls pop3 -connect %s -CAfile %s   (POP3 with STLS)\n", a, ca)
	}
}

// waitForSignals runs until SIGINT or SIGTERM, reloading the certificate
// on SIGHUP, then shuts the server down gracefully.
func waitForSignals(srv *server.Server, log *slog.Logger) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if err := srv.ReloadTLS(); err != nil {
				log.Error("TLS reload failed", "err", err)
			} else {
				log.Info("TLS certificate reloaded")
			}
			continue
		}
		log.Info("shutting down", "signal", sig.String())
		return srv.Shutdown(context.Background())
	}
	return nil
}
