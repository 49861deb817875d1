//go:build !unix

package account

import (
	"io/fs"

	"github.com/mailsec/mailsec"
)

// checkPrivate refuses every file holding a password: without Unix modes
// mailsec cannot tell who else may read it.
func checkPrivate(path string, _ fs.FileInfo) error {
	return mailsec.Errorf(mailsec.Config, "config", nil,
		"%s holds a password, and on this system mailsec cannot check who may read the file; use passwordeval instead", path)
}
