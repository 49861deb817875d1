package main

import (
	"os"
	"path/filepath"
)

// sendmailName is the program name under which mailsec is the sendmail
// interface: cron, PHP's mail() and git send-email run "sendmail" with
// sendmail's options and the message on stdin, so a link or copy of the
// binary by that name makes them send through mailsec unchanged.
const sendmailName = "sendmail"

// init turns an invocation as sendmail into "mailsec send": the command
// tree reads os.Args when it runs, so the command is put in front of
// sendmail's own arguments before it does. send takes those arguments
// (-t, -i, -oi, -f, -F, -B, -N, -R, -V and recipients) as sendmail does.
func init() {
	if len(os.Args) > 0 && filepath.Base(os.Args[0]) == sendmailName {
		os.Args = append([]string{os.Args[0], "send"}, os.Args[1:]...)
	}
}
