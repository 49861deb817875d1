//go:build unix

package account

import (
	"io/fs"
	"os"
	"syscall"

	"github.com/mailsec/mailsec"
)

// checkPrivate refuses a file that others may read or write, or that
// belongs to someone else.
func checkPrivate(path string, info fs.FileInfo) error {
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return mailsec.Errorf(mailsec.Config, "config", nil,
			"%s holds a password but its mode %04o lets others read or change it; run: chmod 600 %s", path, perm, path)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return mailsec.Errorf(mailsec.Config, "config", nil,
			"%s holds a password but belongs to user id %d, not to you (%d)", path, st.Uid, os.Geteuid())
	}
	return nil
}
