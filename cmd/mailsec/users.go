package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/server"
	"github.com/mailsec/mailsec/userdb"
)

func init() { commands = append(commands, usersCmd()) }

// usersCmd is "mailsec users add|del|list": the serve user database.
func usersCmd() *cobra.Command {
	var configFile, dataDir, domain string
	// The same flags as serve's find the same data directory and domains.
	var cfg *server.Config
	open := func() (*userdb.DB, error) {
		var err error
		if cfg, err = loadServeConfig(configFile, dataDir, domain); err != nil {
			return nil, err
		}
		return userdb.Open(filepath.Join(cfg.DataDir, "users"), nil)
	}
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage the users of mailsec serve (<data>/users)",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&dataDir, "data", "", "data directory of mailsec serve (default: the configuration's data_dir, ./mailsec-data)")
	pf.StringVar(&configFile, "config", "", "mailsec serve's configuration file (default: the embedded one)")
	pf.StringVar(&domain, "domain", "", "local mail domain, as given to mailsec serve (replaces domains)")
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user or change a password; the password is read from the terminal (no echo) or stdin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := userdb.CanonicalName(args[0])
			if err != nil {
				return usageError{err}
			}
			pw, err := readNewPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			db, err := open()
			if err != nil {
				return err
			}
			if err := db.Add(name, pw); err != nil {
				return err
			}
			addrs := make([]string, len(cfg.Domains))
			for i, d := range cfg.Domains {
				addrs[i] = name + "@" + d
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s saved in %s; mail for %s goes to %s\n",
				name, db.Path(), strings.Join(addrs, ", "), filepath.Join(cfg.DataDir, "mail", name))
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Remove a user (the Maildir is kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := open()
			if err != nil {
				return err
			}
			return db.Delete(args[0])
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := open()
			if err != nil {
				return err
			}
			for _, n := range db.List() {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	cmd.AddCommand(add, del, list)
	return cmd
}

// readNewPassword reads a password without echo, twice, when stdin is a
// terminal, or the first line of stdin otherwise (scripts). Never argv: it
// would show in ps and shell history.
func readNewPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a, err := readHidden(int(f.Fd()), prompt, "Password: ")
		if err != nil {
			return "", err
		}
		b, err := readHidden(int(f.Fd()), prompt, "Again: ")
		if err != nil {
			return "", err
		}
		if a != b {
			return "", mailsec.Errorf(mailsec.Data, "users", nil, "passwords differ")
		}
		return a, nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", mailsec.Errorf(mailsec.Data, "users", nil, "no password on stdin")
	}
	return pw, nil
}
