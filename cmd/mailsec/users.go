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
	"github.com/mailsec/mailsec/userdb"
)

func init() { commands = append(commands, usersCmd()) }

// usersCmd is "mailsec users add|del|list": the serve user database.
func usersCmd() *cobra.Command {
	var dataDir string
	open := func() (*userdb.DB, error) { return userdb.Open(filepath.Join(dataDir, "users"), nil) }
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage the users of mailsec serve (<data>/users)",
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data", "./mailsec-data", "data directory of mailsec serve")
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
			fmt.Fprintf(cmd.OutOrStdout(), "user %s saved in %s; mail for %s@<domain> goes to %s\n",
				name, db.Path(), name, filepath.Join(dataDir, "mail", name))
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
		fmt.Fprint(prompt, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", mailsec.Errorf(mailsec.Data, "users", nil, "passwords differ")
		}
		return string(a), nil
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
