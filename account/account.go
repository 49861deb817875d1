// Package account reads named mail accounts from a configuration file in
// msmtp's syntax, so that an existing ~/.msmtprc works as it is and msmtp
// users write mailsec's own file the way they already know.
//
// The syntax is msmtp's: one setting per line as "key value", "#" starts a
// comment, a value may be double-quoted (with \" and \\ inside), "defaults"
// starts settings that every later account inherits, "account NAME" starts
// an account, "account NAME : A, B" starts one that inherits A then B, and
// "account default : NAME" names the account used when none is asked for.
//
// Differences from msmtp, all on the side of safety:
//   - Where a file says nothing about TLS, mailsec's defaults hold (STARTTLS
//     mandatory, or implicit TLS on port 465), not msmtp's "tls off".
//   - A file holding a password must belong to the user and be readable by
//     no one else; otherwise Load refuses it with a Config error.
//   - "eval" (a command whose output is more configuration) is refused.
//   - msmtp settings with no meaning for mailsec (logging, aliases, header
//     rewriting) are accepted and listed in Account.Ignored.
//
// mailsec's own file accepts these extra keys: token_eval (a command
// printing an OAuth access token), pin (sha256:BASE64 of the server key),
// revocation (off|leaf|chain), tls_min (1.2|1.3) and proxy (a proxy URL);
// "tls" also takes a mode name: implicit, starttls, starttls-optional, none.
package account

import (
	"time"
)

// Account is one named account with every inherited setting applied. Empty
// fields were not set by the file; the caller's defaults apply to them.
type Account struct {
	// Name is the account's name; Source is FILE:LINE where it starts.
	Name, Source string

	// Host and Port name the server; Port is 0 when not set.
	Host string
	Port int
	// From is the envelope sender.
	From string
	// Domain is the name to send in EHLO (msmtp's "domain").
	Domain string
	// Timeout bounds connecting and each command; 0 when not set.
	Timeout time.Duration
	// Proxy is a proxy URL; msmtp's proxy_host/proxy_port become
	// socks5://host:port.
	Proxy string

	// Auth is "auto" (msmtp's "auth on"), "none" ("auth off"), a SASL
	// mechanism name in lower case, or "" when not set.
	Auth string
	// User is the login name.
	User string
	// Password is the secret written in the file; see Load for the checks
	// a file holding one must pass. PasswordEval and TokenEval are shell
	// commands whose first output line is the password or an OAuth token.
	Password, PasswordEval, TokenEval string

	// TLS is "implicit", "starttls", "starttls-optional", "none" or "".
	TLS string
	// CAFile is the PEM file of trusted roots ("" for the system roots).
	CAFile string
	// CertFile and KeyFile are the client certificate and its key.
	CertFile, KeyFile string
	// NoCertCheck turns off certificate verification (msmtp's
	// "tls_certcheck off").
	NoCertCheck bool
	// ServerName is the name the certificate must carry (msmtp's
	// "tls_host_override").
	ServerName string
	// Fingerprints are msmtp tls_fingerprint values: SHA-256 of the
	// server's certificate as colon-separated hex.
	Fingerprints []string
	// Pins are sha256:BASE64 pins of the server's public key.
	Pins []string
	// TLSMin is the lowest TLS version, "1.2" or "1.3", or "".
	TLSMin string
	// Revocation is "off", "leaf", "chain" or "".
	Revocation string

	// Ignored lists the msmtp settings the account has that mean nothing to
	// mailsec, as "key (FILE:LINE)".
	Ignored []string
}
