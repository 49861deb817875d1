package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/account"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/tlsconf"
)

// connFlags are the connection options common to send, probe and fetch
// (DESIGN.md's CLI contract).
type connFlags struct {
	server        string
	tlsMode       string
	auth          string
	user          string
	passwordCmd   string
	tokenCmd      string
	caFile        string
	insecure      bool
	noNameCheck   bool
	serverName    string
	certFile      string
	keyFile       string
	tlsMin        string
	pins          []string
	revocation    string
	revStrict     bool
	timeout       time.Duration
	json          bool
	transcript    bool
	logLevel      string
	plaintextAuth bool
	proxy         string
	acctFlags
}

func (f *connFlags) register(fs *pflag.FlagSet, defaultPort string) {
	f.flags, f.defaultPort = fs, defaultPort
	fs.StringVarP(&f.accountName, "account", "a", "", "take settings from this account of the configuration file (msmtp syntax; see --config)")
	fs.StringVar(&f.configFile, "config", "", "configuration file with named accounts (default: $XDG_CONFIG_HOME/mailsec/config, else msmtp's ~/.config/msmtp/config or ~/.msmtprc)")
	fs.StringVar(&f.server, "server", "", "server as HOST:PORT (port defaults to "+defaultPort+")")
	fs.StringVar(&f.tlsMode, "tls", "", "implicit|starttls|starttls-optional|none (default: implicit on 465/995, else starttls)")
	fs.StringVar(&f.auth, "auth", "", "auto|none|plain|login|cram-md5|xoauth2|oauthbearer|scram-sha-1|scram-sha-256|scram-sha-256-plus|ntlm (default: auto with --user, else none)")
	fs.StringVar(&f.user, "user", "", "user name to authenticate as; the secret comes from MAILSEC_PASSWORD, --password-cmd or --token-cmd, else a prompt on the terminal")
	fs.StringVar(&f.passwordCmd, "password-cmd", "", "shell command whose first output line is the password")
	fs.StringVar(&f.tokenCmd, "token-cmd", "", "shell command whose first output line is an OAuth access token")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of trusted CA certificates (default: system roots)")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "do not verify the server certificate chain (dangerous)")
	fs.BoolVar(&f.noNameCheck, "no-name-check", false, "do not match the certificate to the server name (dangerous)")
	fs.StringVar(&f.serverName, "tls-server-name", "", "name to verify the certificate against and send as SNI")
	fs.StringVar(&f.certFile, "cert", "", "client certificate PEM")
	fs.StringVar(&f.keyFile, "key", "", "client key PEM")
	fs.StringVar(&f.tlsMin, "tls-min", "1.2", "minimum TLS version: 1.2 or 1.3")
	fs.StringSliceVar(&f.pins, "pin", nil, "sha256:BASE64 pin of the server's public key (SPKI), or its certificate's SHA-256 fingerprint AB:CD:… as msmtp's tls_fingerprint; repeatable")
	fs.StringVar(&f.revocation, "revocation", "chain", "revocation check: off, leaf, or chain (every certificate but the root: a trust anchor is revoked by removing it from the CA file)")
	fs.BoolVar(&f.revStrict, "revocation-strict", false, "refuse a certificate whose revocation status cannot be had (no source, responder unreachable), not only a revoked one")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "limit for connecting and for each command")
	fs.BoolVar(&f.json, "json", false, "print one JSON object on stdout")
	fs.BoolVar(&f.transcript, "transcript", false, "print the protocol transcript on stderr (credentials redacted)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "error|warn|info|debug")
	fs.BoolVar(&f.plaintextAuth, "allow-plaintext-auth", false, "allow sending credentials without TLS (dangerous)")
	fs.StringVar(&f.proxy, "proxy", "", proxyHelp)
}

// commonOpts is what the flags say about a connection, whatever the
// protocol.
type commonOpts struct {
	addr   string
	port   int
	mode   security.TLSMode // --tls, parsed
	tls    tlsconf.Options
	logger *slog.Logger
	dialer dial.Dialer
	auth   *sasl.Credentials
	mech   string
}

// common resolves the flags shared by send, probe and fetch; withAuth
// gathers the credentials too.
func (f *connFlags) common(ctx context.Context, defaultPort string, withAuth bool) (*commonOpts, error) {
	addr, portStr, err := f.address(defaultPort)
	if err != nil {
		return nil, err
	}
	c := &commonOpts{addr: addr}
	c.port, _ = strconv.Atoi(portStr)
	if c.mode, err = security.ParseTLSMode(f.tlsMode); err != nil {
		return nil, usageError{err}
	}
	if c.tls, err = f.tlsOptions(); err != nil {
		return nil, err
	}
	if c.logger, err = f.logger(); err != nil {
		return nil, err
	}
	if c.dialer, err = f.dialer(c.logger); err != nil {
		return nil, err
	}
	if c.dialer != nil {
		// OCSP and CRL fetches go the way the mail goes, not around the proxy.
		c.tls.Revocation.Dialer = c.dialer
	}
	if withAuth {
		if c.auth, c.mech, err = f.credentials(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// dialWithin dials and secures a session (SMTP or POP3, as open says)
// within --timeout; the commands after it are bounded one by one by the
// same limit (the clients' CommandTimeout).
func dialWithin[O, C any](ctx context.Context, cf *connFlags, open func(context.Context, string, *O) (C, error), addr string, o *O) (C, error) {
	dctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	return open(dctx, addr, o)
}

// slowGreeting is the clients' SlowGreeting hook: a silent port most
// often expects implicit TLS, and a person waiting for the timeout should
// hear so after a few seconds, not a minute.
func slowGreeting(waited time.Duration) {
	fmt.Fprintf(os.Stderr, "mailsec: no greeting after %s: if this port speaks implicit TLS (465, 995, 2465, 2995) use --tls implicit\n", waited)
}

// address returns HOST:PORT, adding the default port when none is given.
func (f *connFlags) address(defaultPort string) (string, string, error) {
	if err := f.resolve(); err != nil {
		return "", "", err
	}
	if f.server == "" {
		return "", "", usageError{fmt.Errorf("--server HOST[:PORT] is required, or a default account in %s", strings.Join(account.Paths(), ", "))}
	}
	host, port, err := net.SplitHostPort(f.server)
	if err != nil {
		host, port = strings.Trim(f.server, "[]"), defaultPort
	}
	return net.JoinHostPort(host, port), port, nil
}

// tlsOptions builds the TLS options from the flags.
func (f *connFlags) tlsOptions() (tlsconf.Options, error) {
	o := tlsconf.Options{
		ServerName:                    f.serverName,
		NoServerNameCheck:             f.noNameCheck,
		NoServerCertificateValidation: f.insecure,
		CAFile:                        f.caFile,
		Pins:                          f.pins,
	}
	v, err := tlsconf.ParseVersion(f.tlsMin)
	if err != nil {
		return o, err
	}
	o.MinVersion = v
	mode, err := tlsconf.ParseRevocationMode(f.revocation)
	if err != nil {
		return o, err
	}
	o.Revocation = tlsconf.Revocation{Mode: mode, ExcludeRoot: true, FailNoInfo: f.revStrict, FailOffline: f.revStrict}
	if (f.certFile == "") != (f.keyFile == "") {
		return o, usageError{fmt.Errorf("--cert and --key go together")}
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return o, mailsec.Errorf(mailsec.Config, "client certificate", err, "cannot load %s / %s", f.certFile, f.keyFile)
		}
		o.Certificates = []tls.Certificate{cert}
	}
	return o, nil
}

// credentials gathers the user and secret, never from argv: from the
// environment, a command's output, the account, or else a prompt on the
// terminal.
func (f *connFlags) credentials(ctx context.Context) (*sasl.Credentials, string, error) {
	mech := strings.ToLower(f.auth)
	if mech == "" {
		mech = "auto"
		if f.user == "" && f.tokenCmd == "" && f.acct.tokenEval == "" {
			mech = "none"
		}
	}
	if mech == "none" {
		return nil, "", nil
	}
	if f.user == "" {
		return nil, "", usageError{fmt.Errorf("--auth %s needs --user", mech)}
	}
	cred := &sasl.Credentials{Username: f.user}
	var err error
	switch {
	case f.tokenCmd != "":
		cred.Token, err = secretFromCmd(ctx, f.tokenCmd)
	case f.passwordCmd != "":
		cred.Password, err = secretFromCmd(ctx, f.passwordCmd)
	case os.Getenv("MAILSEC_PASSWORD") != "":
		cred.Password = os.Getenv("MAILSEC_PASSWORD")
	case f.acct.tokenEval != "":
		cred.Token, err = secretFromCmd(ctx, f.acct.tokenEval)
	case f.acct.passwordEval != "":
		cred.Password, err = secretFromCmd(ctx, f.acct.passwordEval)
	case f.acct.password != "":
		cred.Password = f.acct.password
	default:
		var secret string
		var token bool
		if secret, token, err = promptSecret(os.Stdin, os.Stderr, f.user, mech); token {
			cred.Token = secret
		} else {
			cred.Password = secret
		}
	}
	if err != nil {
		return nil, "", err
	}
	if mech == "auto" {
		mech = ""
	}
	return cred, mech, nil
}

// secretFromCmd runs cmd with the shell and returns its first output line,
// as msmtp's passwordeval does.
func secretFromCmd(ctx context.Context, cmd string) (string, error) {
	var out bytes.Buffer
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdout = &out
	c.Stderr = os.Stderr
	if err := c.Run(); err != nil {
		return "", mailsec.Errorf(mailsec.Config, "credentials", err, "the secret command failed")
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", mailsec.Errorf(mailsec.Config, "credentials", nil, "the secret command printed nothing")
	}
	return line, nil
}

// logger builds the slog logger on stderr at the chosen level.
func (f *connFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: %v", f.logLevel, err)}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// transcriptWriter returns stderr when --transcript is on.
func (f *connFlags) transcriptWriter() io.Writer {
	if f.transcript {
		return os.Stderr
	}
	return nil
}
