package account

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailsec/mailsec"
)

// maxFile bounds the configuration file; a larger one is a mistake.
const maxFile = 1 << 20

// Load reads and checks the file at path.
//
// A file holding a password is refused unless it is a regular file owned
// by the user running mailsec and neither group nor others can read or
// write it: anyone who can read it has the password, and anyone who can
// write it can point the account at their own server. msmtp applies the
// same rule.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "config", err, "cannot open %s", path)
	}
	defer fh.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	info, err := fh.Stat()
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "config", err, "cannot stat %s", path)
	}
	if !info.Mode().IsRegular() {
		return nil, mailsec.Errorf(mailsec.Config, "config", nil, "%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFile+1))
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "config", err, "cannot read %s", path)
	}
	if len(data) > maxFile {
		return nil, mailsec.Errorf(mailsec.Config, "config", nil, "%s is larger than %d bytes", path, maxFile)
	}
	f, err := parse(path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if f.holdsPassword() {
		if err := checkPrivate(path, info); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *File) holdsPassword() bool {
	for _, s := range f.accounts {
		for _, st := range s.settings {
			if st.key == "password" {
				return true
			}
		}
	}
	return false
}

// Account returns the named account; "" means the account called
// "default" (msmtp's "account default : NAME"), or the only account when
// the file has just one.
func (f *File) Account(name string) (*Account, error) {
	if name == "" {
		switch {
		case f.accounts["default"] != nil:
			name = "default"
		case len(f.order) == 1:
			name = f.order[0]
		default:
			return nil, mailsec.Errorf(mailsec.Config, "config", nil,
				"%s has no default account: name one with --account (%s) or add \"account default : NAME\"", f.Path, strings.Join(f.order, ", "))
		}
	}
	s, ok := f.accounts[name]
	if !ok {
		return nil, mailsec.Errorf(mailsec.Config, "config", nil, "%s has no account %q (it has: %s)", f.Path, name, strings.Join(f.order, ", "))
	}
	return resolve(s)
}

// Paths lists where a configuration file is looked for, in order:
// mailsec's own file, then msmtp's two places. The XDG base directory
// specification puts user configuration under $XDG_CONFIG_HOME, by default
// ~/.config.
func Paths() []string {
	home, _ := os.UserHomeDir()
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" || !filepath.IsAbs(cfg) {
		cfg = filepath.Join(home, ".config")
	}
	return []string{
		filepath.Join(cfg, "mailsec", "config"),
		filepath.Join(cfg, "msmtp", "config"),
		filepath.Join(home, ".msmtprc"),
	}
}

// Find loads the first file of Paths that exists. It returns (nil, nil)
// when there is none.
func Find() (*File, error) {
	for _, p := range Paths() {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return Load(p)
	}
	return nil, nil
}
