package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/embedded"
)

// The client sees what the server's queue holds, and its errors keep their
// meaning across the socket.
func TestControlRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	q, err := embedded.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	id, err := q.Enqueue(ctx, &queue.Envelope{From: "a@x.test", Recipients: []queue.Recipient{{Addr: "b@y.test"}}},
		strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "control.sock")
	srv, err := Listen(sock, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if fi, err := os.Stat(sock); err != nil {
		t.Errorf("socket: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", fi.Mode())
	}
	if _, err := Listen(sock, q, nil); err == nil {
		t.Error("a second server took over a live socket")
	}
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.List(ctx)
	if err != nil || len(l) != 1 || l[0].ID != id || l[0].Recipients[0].Addr != "b@y.test" {
		t.Fatalf("list %v %+v", err, l)
	}
	if st, err := c.Stats(ctx); err != nil || st.Messages != 1 {
		t.Errorf("stats %+v %v", st, err)
	}
	if err := c.Retry(ctx, id); err != nil {
		t.Error(err)
	}
	if err := c.Delete(ctx, id); err != nil {
		t.Error(err)
	}
	if _, err := c.Get(ctx, id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

// A socket in a directory others can enter is refused: its mode alone
// would leave a moment open after bind.
func TestControlNeedsPrivateDir(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if _, err := Listen(filepath.Join(dir, "control.sock"), nil, nil); err == nil {
		t.Fatal("socket created in a directory others can enter")
	}
}
