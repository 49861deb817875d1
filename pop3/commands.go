package pop3

import (
	"context"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/wire"
)

// maxListLines bounds LIST and UIDL responses: a million messages is far
// beyond any real maildrop, and the bound keeps a hostile endless listing
// from exhausting memory.
const maxListLines = 1 << 20

// MsgInfo is one line of a LIST response: the message number and its size
// in octets as the server claims it. The size is only a claim; nothing is
// allocated from it.
type MsgInfo struct {
	Num  int
	Size int64
}

// UID is one line of a UIDL response (RFC 1939 section 7).
type UID struct {
	Num int
	UID string
}

// Stat returns the number of messages and their total size (STAT).
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	rep, err := c.cmd(ctx, "STAT", "STAT")
	if err != nil {
		return 0, 0, err
	}
	if !rep.OK {
		return 0, 0, rep.err("STAT")
	}
	// RFC 1939 section 5: "+OK nn mm", possibly followed by more text.
	f := strings.Fields(rep.Text)
	if len(f) < 2 {
		return 0, 0, c.wire.Fail(ctx, wire.Quoting("STAT", "malformed STAT answer %q", wire.Clip(rep.Text)))
	}
	n, err1 := strconv.Atoi(f[0])
	s, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || n < 0 || s < 0 {
		return 0, 0, c.wire.Fail(ctx, wire.Quoting("STAT", "malformed STAT answer %q", wire.Clip(rep.Text)))
	}
	return n, s, nil
}

// List returns the number and size of every message (LIST).
func (c *Client) List(ctx context.Context) ([]MsgInfo, error) {
	var out []MsgInfo
	// RFC 1939 section 5 lets a scan listing carry more after the size.
	err := c.listing(ctx, "LIST", func(num int, args []string) error {
		size, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || size < 0 {
			return wire.Quoting("LIST", "malformed message size %q", wire.Clip(args[0]))
		}
		out = append(out, MsgInfo{Num: num, Size: size})
		return nil
	})
	return out, err
}

// Uidl returns the unique id of every message (UIDL). A server without UIDL
// answers -ERR, which comes back as a POPServer error.
func (c *Client) Uidl(ctx context.Context) ([]UID, error) {
	var out []UID
	seen := map[string]bool{}
	err := c.listing(ctx, "UIDL", func(num int, args []string) error {
		// RFC 1939 section 7: "No information follows the unique-id",
		// and the id identifies one message in the maildrop. An id shared
		// by two messages would let the second pass for already fetched
		// (and be deleted unread with --delete), so the listing is refused.
		uid := strings.Join(args, " ")
		if len(args) != 1 || !validUID(uid) {
			return wire.Quoting("UIDL", "invalid unique id %q", wire.Clip(uid))
		}
		if seen[uid] {
			return wire.Quoting("UIDL", "unique id %q given to two messages", wire.Clip(uid))
		}
		seen[uid] = true
		out = append(out, UID{Num: num, UID: uid})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// validUID checks RFC 1939 section 7: one to 70 characters in 0x21-0x7E.
// Ids go into the state file and into commands, so anything else is
// refused rather than escaped.
func validUID(s string) bool {
	if len(s) == 0 || len(s) > 70 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// listing runs LIST or UIDL and hands each "num arg..." line to each, with
// at least one argument. A message number listed twice is refused: each
// line describes a distinct message (RFC 1939 sections 5 and 7).
func (c *Client) listing(ctx context.Context, op string, each func(num int, args []string) error) error {
	rep, err := c.cmdMulti(ctx, op, op)
	if err != nil {
		return err
	}
	if !rep.OK {
		return rep.err(op)
	}
	var perr error
	nums := map[int]bool{}
	err = c.multi(ctx, op, maxListLines, func(l string) error {
		if perr != nil {
			return nil
		}
		f := strings.Fields(l)
		num := 0
		if len(f) >= 2 {
			num, _ = strconv.Atoi(f[0])
		}
		if num <= 0 || nums[num] {
			perr = wire.Quoting(op, "malformed %s line %q", op, wire.Clip(l))
			return nil
		}
		nums[num] = true
		perr = each(num, f[1:])
		return nil
	})
	if err != nil {
		return err
	}
	// The whole response was read, so the session stays in step, but a
	// listing with a bad line cannot be trusted.
	if perr != nil {
		return c.wire.Fail(ctx, perr)
	}
	return nil
}

// Retr starts downloading message num (RETR). The Body streams the message
// as the server stores it (CRLF line ends), dot-unstuffed; read it to
// io.EOF or Close it before the next command.
func (c *Client) Retr(ctx context.Context, num int) (*Body, error) {
	return c.download(ctx, "RETR", "RETR "+strconv.Itoa(num))
}

// Top starts downloading the header of message num and its first lines
// lines of body (TOP, RFC 1939 section 7).
func (c *Client) Top(ctx context.Context, num, lines int) (*Body, error) {
	return c.download(ctx, "TOP", "TOP "+strconv.Itoa(num)+" "+strconv.Itoa(lines))
}

func (c *Client) download(ctx context.Context, op, line string) (*Body, error) {
	rep, err := c.cmdMulti(ctx, op, line)
	if err != nil {
		return nil, err
	}
	if !rep.OK {
		return nil, rep.err(op)
	}
	return c.openBody(ctx, op), nil
}

// Dele marks message num deleted (DELE); the server deletes it only when
// the session ends with QUIT.
func (c *Client) Dele(ctx context.Context, num int) error {
	return c.simple(ctx, "DELE", "DELE "+strconv.Itoa(num))
}

// Rset unmarks every message marked deleted (RSET).
func (c *Client) Rset(ctx context.Context) error { return c.simple(ctx, "RSET", "RSET") }

// Noop sends NOOP, to keep a session alive or test it.
func (c *Client) Noop(ctx context.Context) error { return c.simple(ctx, "NOOP", "NOOP") }
