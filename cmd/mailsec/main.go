// Command mailsec sends, probes and fetches mail over secure connections and
// runs a small SMTP and POP3 server with a strict STARTTLS policy. It is a
// thin layer over the library: every protocol rule lives in the packages.
package main

import (
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		os.Exit(report(err))
	}
}

// newRoot builds the command tree.
func newRoot() *cobra.Command { return rootOf(commands...) }

// rootOf builds the root command over cmds; tests build one over fresh
// commands, whose flags hold no earlier run's values.
func rootOf(cmds ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:           "mailsec",
		Short:         "Secure mail transport: send, probe, fetch and serve",
		Version:       version(debug.ReadBuildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(cmds...)
	requireCommand(root)
	return root
}

// commands is filled by the init functions of the per-command files.
var commands []*cobra.Command
