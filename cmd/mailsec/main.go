// Command mailsec sends, probes and fetches mail over secure connections and
// runs a small SMTP and POP3 server with a strict STARTTLS policy. It is a
// thin layer over the library: every protocol rule lives in the packages.
package main

import (
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "mailsec",
		Short:         "Secure mail transport: send, probe, fetch and serve",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(commands...)
	if err := root.Execute(); err != nil {
		os.Exit(report(err))
	}
}

// commands is filled by the init functions of the per-command files.
var commands []*cobra.Command
