//go:build unix

package pgcluster

import (
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// credential is the user PostgreSQL runs as when the caller runs as root.
type credential struct{ uid, gid int }

func lookupCredential(u *user.User) (*credential, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, err
	}
	return &credential{uid, gid}, nil
}

func (c *credential) chown(name string) error {
	if c == nil {
		return nil
	}
	return os.Chown(name, c.uid, c.gid)
}

func (c *credential) apply(cmd *exec.Cmd) {
	if c == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(c.uid), Gid: uint32(c.gid), Groups: []uint32{},
	}}
}
