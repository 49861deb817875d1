// Package backend holds what the queue.Queue implementations (embedded,
// postgres) have in common: the errors the queue contract names, the
// envelope checks of Enqueue and Record, lease tokens, and copying a
// submitted body to a file.
package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
)

// NotFound is queue.ErrNotFound for id, with code Data.
func NotFound(opname string, id queue.ID) error {
	return mailsec.Errorf(mailsec.Data, opname, queue.ErrNotFound, "no message %q in the queue", string(id))
}

// LeaseLost is queue.ErrLeaseLost for id, with code Canceled: the
// caller's work is discarded.
func LeaseLost(opname string, id queue.ID) error {
	return mailsec.Errorf(mailsec.Canceled, opname, queue.ErrLeaseLost, "the lease on %s is no longer current", id)
}

// Envelope checks the arguments of an Enqueue and returns the envelope
// to store: a copy of env whose recipients are all queue.Pending.
func Envelope(ctx context.Context, env *queue.Envelope) (queue.Envelope, error) {
	const opname = "queue enqueue"
	if env == nil {
		return queue.Envelope{}, mailsec.Errorf(mailsec.Data, opname, nil, "no envelope")
	}
	if err := ctx.Err(); err != nil {
		return queue.Envelope{}, mailsec.Errorf(mailsec.Canceled, opname, err, "enqueue canceled")
	}
	e := *env
	e.Recipients = append([]queue.Recipient(nil), env.Recipients...)
	for i := range e.Recipients {
		e.Recipients[i].Status = queue.Pending
	}
	return e, nil
}

// Apply makes the recipient updates of a in env, the envelope of entry
// id. A recipient env does not have is a Data error, and then env is
// left as it was.
func Apply(opname string, id queue.ID, env *queue.Envelope, a *queue.Attempt) error {
	for i := range a.Recipients {
		if i < 0 || i >= len(env.Recipients) {
			return mailsec.Errorf(mailsec.Data, opname, nil, "%s has no recipient %d", id, i)
		}
	}
	for i, u := range a.Recipients {
		env.Recipients[i].Status = u.Status
		if u.Outcome != nil {
			env.Recipients[i].Last = u.Outcome
		}
	}
	return nil
}

// NewToken returns a random lease token, unique per claim.
func NewToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WriteError is how Copy reports a failure to write the file, as
// opposed to one of reading the body.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return e.Err.Error() }

func (e *WriteError) Unwrap() error { return e.Err }

// Copy copies body to f until io.EOF. A failure to write f is a
// *WriteError; any other error came from body.
func Copy(f *os.File, body io.Reader) (int64, error) {
	return io.Copy(writerOnly{f}, body)
}

// writerOnly marks the file's write errors, and hides *os.File's
// ReadFrom so that io.Copy cannot hand the whole copy to the kernel
// without our seeing which side failed.
type writerOnly struct{ f *os.File }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		return n, &WriteError{err}
	}
	return n, nil
}
