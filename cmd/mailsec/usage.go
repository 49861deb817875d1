package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// requireCommand makes c and every command below it that only groups
// others (mailsec itself, users, queue) refuse to run without one of them:
// a usage error (exit 64) with the list of commands on stderr, where cobra
// would print its help and exit 0, or fail an unknown name as an internal
// error. --help still prints the help and exits 0.
func requireCommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireCommand(sub)
	}
	if c.Runnable() || !c.HasSubCommands() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		listCommands(cmd.ErrOrStderr(), cmd)
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
		}
		return usageError{fmt.Errorf("%s needs a command", cmd.CommandPath())}
	}
}

// listCommands writes the commands under c, one a line with its summary.
func listCommands(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\nCommands:\n", c.CommandPath())
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			fmt.Fprintf(w, "  %-*s  %s\n", c.NamePadding(), sub.Name(), sub.Short)
		}
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", c.CommandPath())
}

// version describes the build for --version: the module's version (a tag
// when installed with go install module@version, "(devel)" from a clone)
// and the VCS commit, time and modified flag that go build records from a
// checkout.
func version(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "(no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{v}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if r := set["vcs.revision"]; r != "" {
		parts = append(parts, "commit "+r)
	}
	if t := set["vcs.time"]; t != "" {
		parts = append(parts, t)
	}
	if set["vcs.modified"] == "true" {
		parts = append(parts, "modified")
	}
	return strings.Join(parts, ", ") + " (" + bi.GoVersion + ")"
}
