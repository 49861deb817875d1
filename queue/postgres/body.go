package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/internal/backend"
)

// spoolInMemory is the size up to which a body is spooled in memory; a
// larger one goes to a file, so that many large submissions at once do
// not take their total in memory.
const spoolInMemory = 1 << 20

// spool holds a body read whole, in mem or in f.
type spool struct {
	mem  []byte
	f    *os.File
	size int64
}

// spool reads body to io.EOF, and at most the queue's MaxBodySize.
func (q *Queue) spool(body io.Reader) (*spool, error) {
	const opname = "queue enqueue"
	// One octet over the limit tells a body at the limit from a larger
	// one.
	lr := &io.LimitedReader{R: body, N: q.maxBody + 1}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(lr, spoolInMemory+1)); err != nil {
		return nil, mailsec.Errorf(mailsec.Data, opname, err, "cannot read the message body")
	}
	s := &spool{mem: buf.Bytes(), size: int64(buf.Len())}
	if s.size > spoolInMemory {
		f, err := os.CreateTemp(q.spoolDir, "mailsec-spool-")
		if err != nil {
			return nil, mailsec.Errorf(mailsec.Config, opname, err, "cannot create a spool file")
		}
		// Unlinked at once, so that a crash leaves nothing to clean up.
		os.Remove(f.Name())
		s.f, s.mem = f, nil
		n, err := backend.Copy(f, io.MultiReader(&buf, lr))
		s.size = n
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			s.close()
			var we *backend.WriteError
			if errors.As(err, &we) {
				return nil, mailsec.Errorf(mailsec.Config, opname, we.Err, "cannot write the spool file")
			}
			return nil, mailsec.Errorf(mailsec.Data, opname, err, "cannot read the message body")
		}
	}
	if s.size > q.maxBody {
		s.close()
		return nil, mailsec.Errorf(mailsec.Data, opname, nil,
			"the message body exceeds the queue's limit of %d octets", q.maxBody)
	}
	return s, nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// copySignature opens a binary COPY stream: the signature, no flags, no
// header extension.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyData is the binary COPY stream of the one row (id, body): each
// field is its length, then its octets; the trailer is a field count of
// -1.
func (s *spool) copyData(id queue.ID) io.Reader {
	head := append([]byte(nil), copySignature...)
	head = binary.BigEndian.AppendUint16(head, 2)
	head = binary.BigEndian.AppendUint32(head, uint32(len(id)))
	head = append(head, id...)
	head = binary.BigEndian.AppendUint32(head, uint32(s.size))
	var body io.Reader = bytes.NewReader(s.mem)
	if s.f != nil {
		body = s.f
	}
	return io.MultiReader(bytes.NewReader(head), body, bytes.NewReader([]byte{0xff, 0xff}))
}

// bodyChunk is how much of a body one query fetches.
const bodyChunk = 1 << 20

// Body implements queue.Queue. The body is read in chunks with
// substring(), each its own query: the column is stored uncompressed
// out of line, so that each fetches only the part asked for, and no
// connection is held between reads however slowly the deliverer sends.
// The reader's later fetches use ctx too.
func (q *Queue) Body(ctx context.Context, id queue.ID) (io.ReadCloser, error) {
	const opname = "queue body"
	if q.isClosed() {
		return nil, closedErr(opname)
	}
	if !queue.ValidID(string(id)) {
		return nil, backend.NotFound(opname, id)
	}
	r := &bodyReader{q: q, ctx: ctx, id: id}
	if err := r.fetch(opname, true); err != nil {
		return nil, err
	}
	return r, nil
}

type bodyReader struct {
	q      *Queue
	ctx    context.Context
	id     queue.ID
	size   int64
	off    int64 // of the end of buf in the body
	buf    []byte
	closed bool
}

// fetch reads the next chunk; the first also learns the size (which
// octet_length gives without reading the value).
func (r *bodyReader) fetch(opname string, first bool) error {
	ctx, exit, err := r.q.enter(r.ctx, opname)
	if err != nil {
		return err
	}
	defer exit()
	if first {
		err = r.q.pool.QueryRow(ctx, `SELECT octet_length(body), substring(body FROM 1 FOR $2) FROM bodies WHERE id = $1`,
			string(r.id), bodyChunk).Scan(&r.size, &r.buf)
	} else {
		err = r.q.pool.QueryRow(ctx, `SELECT substring(body FROM $2 FOR $3) FROM bodies WHERE id = $1`,
			string(r.id), r.off+1, bodyChunk).Scan(&r.buf)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return backend.NotFound(opname, r.id)
	}
	if err != nil {
		return r.q.fail(opname, err)
	}
	r.off += int64(len(r.buf))
	return nil
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, mailsec.Errorf(mailsec.NotConnected, "queue body", fs.ErrClosed, "body of %s read after Close", r.id)
	}
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		if err := r.fetch("queue body", false); err != nil {
			return 0, err
		}
		if len(r.buf) == 0 {
			return 0, mailsec.Errorf(mailsec.Data, "queue body", io.ErrUnexpectedEOF, "body of %s ends early", r.id)
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *bodyReader) Close() error {
	r.closed, r.buf = true, nil
	return nil
}
