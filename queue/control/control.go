// Package control carries a running server's queue.Admin over a Unix
// socket, so that "mailsec queue list" and friends work while "mailsec
// serve" holds the embedded queue (whose index only one process may open)
// and always see the server's own view of it. The socket is mode 0600 in
// the queue's private directory: only its owner may talk to it.
//
// The protocol is one JSON request line and one JSON response per
// connection; it is private to one build of mailsec and carries no
// version.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
)

// request is what a client asks.
type request struct {
	Op string   `json:"op"` // list, get, retry, delete, stats
	ID queue.ID `json:"id,omitempty"`
}

// response is the server's answer.
type response struct {
	Entries []*queue.Entry `json:"entries,omitempty"`
	Entry   *queue.Entry   `json:"entry,omitempty"`
	Stats   *queue.Stats   `json:"stats,omitempty"`
	Error   *wireError     `json:"error,omitempty"`
}

// wireError is a *mailsec.Error as it crosses the socket.
type wireError struct {
	Code     string `json:"code"`
	Detail   string `json:"detail"`
	NotFound bool   `json:"not_found,omitempty"`
}

// maxRequest bounds a request line; requests are tiny.
const maxRequest = 4096

// Server answers on the socket for a queue.
type Server struct {
	ln   net.Listener
	q    queue.Admin
	log  *slog.Logger
	wg   sync.WaitGroup
	path string
}

// Listen creates the socket at path (replacing one a crashed server left)
// and serves q on it until Close.
func Listen(path string, q queue.Admin, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, mailsec.Errorf(mailsec.Config, "control", nil, "another server already answers on %s", path)
		}
		os.Remove(path)
	}
	// The socket's directory must be private: that, not the socket's own
	// mode (set only after bind), is what keeps others out from the start.
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm()&0o077 != 0 {
		return nil, mailsec.Errorf(mailsec.Config, "control", err, "the directory of %s must exist and be private (mode 0700)", path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "control", err, "cannot create the control socket %s", path)
	}
	os.Chmod(path, 0o600)
	s := &Server{ln: ln, q: q, log: log, path: path}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReaderSize(c, maxRequest).ReadSlice('\n')
	if err != nil {
		return
	}
	var req request
	resp := &response{}
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = &wireError{Code: mailsec.Protocol.String(), Detail: "bad request"}
	} else {
		s.answer(&req, resp)
	}
	json.NewEncoder(c).Encode(resp)
}

func (s *Server) answer(req *request, resp *response) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	switch req.Op {
	case "list":
		resp.Entries, err = s.q.List(ctx)
	case "get":
		resp.Entry, err = s.q.Get(ctx, req.ID)
	case "retry":
		err = s.q.Retry(ctx, req.ID)
	case "delete":
		err = s.q.Delete(ctx, req.ID)
	case "stats":
		var st queue.Stats
		st, err = s.q.Stats(ctx)
		resp.Stats = &st
	default:
		err = mailsec.Errorf(mailsec.Protocol, "control", nil, "unknown operation %q", req.Op)
	}
	if err != nil {
		code := mailsec.CodeOf(err)
		if code == 0 {
			code = mailsec.Socket
		}
		resp.Error = &wireError{Code: code.String(), Detail: err.Error(), NotFound: errors.Is(err, queue.ErrNotFound)}
	}
	if req.Op != "list" && req.Op != "get" && req.Op != "stats" {
		s.log.Info("queue operation", "op", req.Op, "id", req.ID, "ok", err == nil)
	}
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	os.Remove(s.path)
	return err
}

// Client is a queue.Admin that asks a running server.
type Client struct{ path string }

// Dial returns a client for the server at path; it fails when none
// answers there (no server running).
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c.Close()
	return &Client{path: path}, nil
}

func (c *Client) do(ctx context.Context, req request) (*response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, mailsec.NetError("control", mailsec.TCPConnect, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, mailsec.NetError("control", mailsec.SocketTx, err)
	}
	var resp response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, mailsec.NetError("control", mailsec.SocketRx, err)
	}
	if e := resp.Error; e != nil {
		code, _ := mailsec.ParseCode(e.Code)
		var cause error
		if e.NotFound {
			cause = queue.ErrNotFound
		}
		return nil, &mailsec.Error{Code: code, Op: "queue", Detail: e.Detail, Err: cause}
	}
	return &resp, nil
}

// Get implements queue.Admin.
func (c *Client) Get(ctx context.Context, id queue.ID) (*queue.Entry, error) {
	r, err := c.do(ctx, request{Op: "get", ID: id})
	if err != nil {
		return nil, err
	}
	return r.Entry, nil
}

// List implements queue.Admin.
func (c *Client) List(ctx context.Context) ([]*queue.Entry, error) {
	r, err := c.do(ctx, request{Op: "list"})
	if err != nil {
		return nil, err
	}
	return r.Entries, nil
}

// Retry implements queue.Admin.
func (c *Client) Retry(ctx context.Context, id queue.ID) error {
	_, err := c.do(ctx, request{Op: "retry", ID: id})
	return err
}

// Delete implements queue.Admin.
func (c *Client) Delete(ctx context.Context, id queue.ID) error {
	_, err := c.do(ctx, request{Op: "delete", ID: id})
	return err
}

// Stats implements queue.Admin.
func (c *Client) Stats(ctx context.Context) (queue.Stats, error) {
	r, err := c.do(ctx, request{Op: "stats"})
	if err != nil || r.Stats == nil {
		return queue.Stats{}, err
	}
	return *r.Stats, nil
}
