package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/account"
)

// acctFlags hold the --account and --config flags and what the chosen
// account supplies besides the common flags.
type acctFlags struct {
	accountName, configFile string
	flags                   *pflag.FlagSet
	defaultPort             string
	resolved                bool
	resolveErr              error

	localName string // EHLO name (msmtp's domain)
	acctFrom  string
	acct      acctSecrets
	acctProxy string
}

// acctSecrets are the account's ways to the secret. They rank after the
// command line and MAILSEC_PASSWORD: what is given for one run beats what
// the file says for every run.
type acctSecrets struct {
	password, passwordEval, tokenEval string
}

// resolve applies the account from the configuration file, once, to every
// setting the command line left alone. An account is read when --account
// names one, or when --server is missing and a configuration file exists
// (its default account then). From is the account's sender, for send.
func (f *connFlags) resolve() error {
	if f.resolved {
		return f.resolveErr
	}
	f.resolved = true
	f.resolveErr = f.loadAccount()
	return f.resolveErr
}

func (f *connFlags) loadAccount() error {
	if f.accountName == "" && f.server != "" {
		return nil
	}
	var (
		file *account.File
		err  error
	)
	if f.configFile != "" {
		file, err = account.Load(f.configFile)
	} else {
		file, err = account.Find()
	}
	if err != nil {
		return err
	}
	if file == nil {
		if f.accountName != "" {
			return mailsec.Errorf(mailsec.Config, "config", nil, "--account %s: no configuration file (looked in %s)",
				f.accountName, strings.Join(account.Paths(), ", "))
		}
		return nil
	}
	a, err := file.Account(f.accountName)
	if err != nil {
		return err
	}
	f.apply(a)
	// An ignored TLS setting means the user expected a property mailsec
	// does not give in that form: say so always. Logging and header
	// settings are noise for cron jobs: only at --log-level info or debug.
	verbose := f.logLevel == "info" || f.logLevel == "debug"
	for _, ig := range a.Ignored {
		if verbose || strings.HasPrefix(ig, "tls_") {
			fmt.Fprintf(os.Stderr, "mailsec: account %s: ignoring the msmtp setting %s\n", a.Name, ig)
		}
	}
	return nil
}

// apply copies the account's settings into the flags the user did not give.
func (f *connFlags) apply(a *account.Account) {
	unset := func(name string) bool { return f.flags == nil || !f.flags.Changed(name) }
	setStr := func(name string, dst *string, v string) {
		if v != "" && unset(name) {
			*dst = v
		}
	}
	if unset("server") && a.Host != "" {
		port := a.Port
		if port == 0 && a.TLS == "implicit" && f.defaultPort == "587" {
			// msmtp's rule: tls_starttls off without a port means 465.
			port = 465
		}
		f.server = a.Host
		if port != 0 {
			f.server = net.JoinHostPort(a.Host, strconv.Itoa(port))
		}
	}
	setStr("tls", &f.tlsMode, a.TLS)
	setStr("auth", &f.auth, a.Auth)
	setStr("user", &f.user, a.User)
	setStr("ca-file", &f.caFile, a.CAFile)
	setStr("tls-server-name", &f.serverName, a.ServerName)
	setStr("cert", &f.certFile, a.CertFile)
	setStr("key", &f.keyFile, a.KeyFile)
	setStr("tls-min", &f.tlsMin, a.TLSMin)
	setStr("revocation", &f.revocation, a.Revocation)
	if a.NoCertCheck && unset("insecure-skip-verify") {
		f.insecure = true
	}
	if unset("pin") {
		f.pins = append(append(f.pins, a.Pins...), a.Fingerprints...)
	}
	if a.Timeout != 0 && unset("timeout") {
		f.timeout = a.Timeout
	}
	f.localName = a.Domain
	f.acctFrom = a.From
	f.acct = acctSecrets{password: a.Password, passwordEval: a.PasswordEval, tokenEval: a.TokenEval}
	f.acctProxy = a.Proxy
}
