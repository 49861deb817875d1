package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/mailsec/mailsec"
)

// readHidden shows label on w and reads one line from the terminal fd
// without echo.
func readHidden(fd int, w io.Writer, label string) (string, error) {
	fmt.Fprint(w, label)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(w)
	if err != nil {
		return "", mailsec.Errorf(mailsec.Config, "credentials", err, "cannot read from the terminal")
	}
	return string(b), nil
}

// promptSecret asks the person at the terminal for the secret of user
// (an OAuth access token for the token mechanisms, else the password), as
// msmtp and fetchmail do: only when stdin and stderr are both terminals,
// so that nothing waits for an answer under cron or in a pipe, where the
// missing secret is a configuration error as before.
func promptSecret(in, out *os.File, user, mech string) (cred string, token bool, err error) {
	if !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return "", false, mailsec.Errorf(mailsec.Config, "credentials", nil,
			"no secret for %s: set MAILSEC_PASSWORD, --password-cmd or --token-cmd, or give the account password or passwordeval (secrets are never taken from the command line)", user)
	}
	what := "Password"
	if token = mech == "xoauth2" || mech == "oauthbearer"; token {
		what = "OAuth access token"
	}
	s, err := readHidden(int(in.Fd()), out, what+" for "+user+": ")
	if err != nil {
		return "", false, err
	}
	if s = strings.TrimRight(s, "\r"); s == "" {
		return "", false, mailsec.Errorf(mailsec.Config, "credentials", nil, "no %s given for %s", strings.ToLower(what), user)
	}
	return s, token, nil
}
