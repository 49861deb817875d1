//go:build !unix

package pgcluster

import (
	"errors"
	"os/exec"
	"os/user"
)

// credential exists on Unix only, where a caller running as root must hand
// PostgreSQL to another user.
type credential struct{}

func lookupCredential(*user.User) (*credential, error) {
	return nil, errors.New("pgcluster: cannot run PostgreSQL as another user on this system")
}

func (*credential) chown(string) error { return nil }

func (*credential) apply(*exec.Cmd) {}
