// Package server runs mailsec serve: it reads the configuration (TOML, with
// an embedded default so that no file is needed), prepares the data
// directory, TLS certificates and user database, and starts one service per
// listener from a registry of listener kinds (smtpd's mx, submission and
// smtps here; pop3 and pop3s register themselves the same way).
package server

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mailsec/mailsec"
)

//go:embed default.toml
var defaultConfig string

// DefaultConfig returns the embedded default configuration text.
func DefaultConfig() string { return defaultConfig }

// Config is the whole configuration of mailsec serve.
type Config struct {
	// DataDir holds the users file, the Maildirs and generated TLS files.
	DataDir string `toml:"data_dir"`
	// Hostname is the server's name in greetings and Received headers.
	Hostname string `toml:"hostname"`
	// Domains are the local mail domains.
	Domains []string `toml:"domains"`
	// TLS names the certificate; empty fields mean a generated one.
	TLS TLSConfig `toml:"tls"`
	// Limits bound resource use.
	Limits Limits `toml:"limits"`
	// Metrics is the loopback host:port of the Prometheus metrics
	// endpoint (GET /metrics); "" turns metrics off.
	Metrics string `toml:"metrics"`
	// Listeners are the ports to serve.
	Listeners []Listener `toml:"listener"`
	// Relay configures outbound delivery.
	Relay RelayConfig `toml:"relay"`
	// Queue selects where outbound mail waits.
	Queue QueueConfig `toml:"queue"`
	// Submission says who authenticated users may send as.
	Submission SubmissionConfig `toml:"submission"`
}

// TLSConfig names the server certificate and key (PEM files). Both empty
// means a certificate signed by a generated local CA.
type TLSConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// Limits are smtpd.Limits in configuration form, plus the shutdown wait.
// Zero values mean smtpd's defaults.
type Limits struct {
	MaxMessageSize   int64    `toml:"max_message_size"`
	MaxRecipients    int      `toml:"max_recipients"`
	MaxSessions      int      `toml:"max_sessions"`
	MaxPerIP         int      `toml:"max_per_ip"`
	CommandTimeout   Duration `toml:"command_timeout"`
	DataTimeout      Duration `toml:"data_timeout"`
	MaxAuthFailures  int      `toml:"max_auth_failures"`
	AuthFailureDelay Duration `toml:"auth_failure_delay"`
	// POP3IdleTimeout is pop3d's autologout timer (RFC 1939 section 3
	// asks for at least 10 minutes); 0 means 10 minutes.
	POP3IdleTimeout Duration `toml:"pop3_idle_timeout"`
	// ShutdownTimeout is how long SIGINT/SIGTERM waits for messages in
	// transfer before closing their connections; 0 means 30 seconds.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Listener is one listening socket.
type Listener struct {
	// Name labels the listener in logs and output; defaults to Kind.
	Name string `toml:"name"`
	// Address is host:port.
	Address string `toml:"address"`
	// Kind selects the service: a name registered with RegisterKind.
	Kind string `toml:"kind"`
	// TLS is the STARTTLS policy of plain listeners: "may" or "require";
	// "" means the kind's default.
	TLS string `toml:"tls"`
	// Optional listeners whose kind is not registered in this build are
	// skipped with a note instead of failing the start.
	Optional bool `toml:"optional"`
}

// Duration is a time.Duration written as "5m" in TOML.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler. Besides Go's units
// it takes whole days ("5d"), the unit queue lifetimes are spoken in.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Parse reads a configuration. Keys it does not know are errors, so that
// a typo does not silently leave a default in place.
func Parse(text string) (*Config, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "config", err, "invalid configuration")
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, mailsec.Errorf(mailsec.Config, "config", nil, "unknown keys: %s", strings.Join(keys, ", "))
	}
	return &c, c.check()
}

// Default returns the embedded default configuration.
func Default() *Config {
	c, err := Parse(defaultConfig)
	if err != nil {
		panic(fmt.Sprintf("embedded default config: %v", err))
	}
	return c
}

func (c *Config) check() error {
	if c.DataDir == "" {
		return mailsec.Errorf(mailsec.Config, "config", nil, "data_dir is empty")
	}
	if len(c.Listeners) == 0 {
		return mailsec.Errorf(mailsec.Config, "config", nil, "no listeners")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return mailsec.Errorf(mailsec.Config, "config", nil, "tls.cert and tls.key go together")
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Address == "" || l.Kind == "" {
			return mailsec.Errorf(mailsec.Config, "config", nil, "listener %d needs address and kind", i+1)
		}
		if l.Name == "" {
			l.Name = l.Kind
		}
		if l.TLS != "" && l.TLS != "may" && l.TLS != "require" {
			return mailsec.Errorf(mailsec.Config, "config", nil, "listener %s: tls must be may or require", l.Name)
		}
		// A POP3 login needs TLS (Domino's rule, docs/requirements.md), so "may" would be a promise
		// the pop3 kind does not keep.
		if l.Kind == "pop3" && l.TLS == "may" {
			return mailsec.Errorf(mailsec.Config, "config", nil, "listener %s: pop3 always requires STLS before login; tls = \"may\" is not possible", l.Name)
		}
	}
	if err := c.Relay.check(); err != nil {
		return err
	}
	if err := c.Submission.check(); err != nil {
		return err
	}
	return c.Queue.check()
}
