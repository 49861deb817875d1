package pop3d

import (
	"math"
	"os"
	"strconv"
	"strings"
)

// The commands of the TRANSACTION state and the UPDATE that QUIT enters
// (RFC 1939 sections 5 and 6).

// quit ends the session; in the TRANSACTION state it first enters UPDATE
// and removes the messages marked deleted (RFC 1939 section 6).
func (ss *session) quit(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	if ss.box == nil {
		return &reply{ok: true, text: ss.srv.base.Host + " signing off", close: true}
	}
	box := ss.box
	failed := box.commit()
	box.release()
	ss.box = nil
	if failed > 0 {
		ss.c.Log.Error("UPDATE: messages not removed", "count", failed)
		return closeReply("SYS/TEMP", strconv.Itoa(failed)+" deleted messages not removed")
	}
	left, _ := box.stat()
	return &reply{ok: true, text: ss.srv.base.Host + " signing off (" + strconv.Itoa(left) + " messages left)", close: true}
}

// stat answers STAT (RFC 1939 section 5).
func (ss *session) stat(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	n, size := ss.box.stat()
	return okReply(strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
}

// list answers LIST and UIDL (RFC 1939 sections 5 and 7), for one message
// or as a multi-line listing of every message not marked deleted.
func (ss *session) list(cmd command) *reply {
	value := func(i int) string {
		if cmd.verb == "UIDL" {
			return ss.box.uids[i]
		}
		return strconv.FormatInt(ss.box.msgs[i].Size, 10)
	}
	switch len(cmd.args) {
	case 0:
		var lines []string
		for i := range ss.box.msgs {
			if !ss.box.deleted[i] {
				lines = append(lines, strconv.Itoa(i+1)+" "+value(i))
			}
		}
		n, size := ss.box.stat()
		ss.multiline(okReply(strconv.Itoa(n)+" messages ("+strconv.FormatInt(size, 10)+" octets)"), lines)
		return nil
	case 1:
		n, r := ss.box.get(cmd.args[0])
		if r != nil {
			return r
		}
		return okReply(strconv.Itoa(n) + " " + value(n-1))
	}
	return errSyntax
}

// retr answers RETR and TOP (RFC 1939 sections 5 and 7), streaming the
// message from its file with byte-stuffing.
func (ss *session) retr(cmd command) *reply {
	lines := -1
	switch {
	case cmd.verb == "RETR" && len(cmd.args) == 1:
	case cmd.verb == "TOP" && len(cmd.args) == 2:
		arg := cmd.args[1]
		if strings.Trim(arg, "0123456789") != "" {
			return errSyntax // RFC 1939 section 7: a non-negative number, no sign
		}
		// A count beyond int is valid and simply asks for every line.
		v, err := strconv.Atoi(arg)
		if err != nil {
			v = math.MaxInt
		}
		lines = v
	default:
		return errSyntax
	}
	n, r := ss.box.get(cmd.args[0])
	if r != nil {
		return r
	}
	msg := ss.box.msgs[n-1]
	f, err := os.Open(msg.Path)
	if err != nil {
		ss.c.Log.Error("cannot open message", "err", err)
		return errStoreFailed
	}
	defer f.Close()
	head := okReply("message follows")
	if lines < 0 {
		head = okReply(strconv.FormatInt(msg.Size, 10) + " octets")
	}
	ss.send(head)
	read, err := writeMessage(ss.c.W, f, lines)
	if err != nil {
		// The response is already under way: a -ERR now would be taken
		// for message text, so the only honest end is to close.
		ss.c.Log.Error("reading message failed", "err", err)
		return &reply{close: true}
	}
	ss.c.W.WriteString(".\r\n")
	if lines < 0 {
		ss.retrieved++
		ss.retrievedBytes += read
		if o := ss.srv.Observer; o != nil {
			o.Retrieved(ss.info(), read)
		}
	}
	return nil
}

// noop answers NOOP (RFC 1939 section 5).
func (ss *session) noop(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	return okReply("")
}

// dele answers DELE (RFC 1939 section 5): the message is only marked.
func (ss *session) dele(cmd command) *reply {
	if len(cmd.args) != 1 {
		return errSyntax
	}
	n, r := ss.box.get(cmd.args[0])
	if r != nil {
		return r
	}
	ss.box.deleted[n-1] = true
	return okReply("message " + strconv.Itoa(n) + " deleted")
}

// rset answers RSET (RFC 1939 section 5): all deletion marks are removed.
func (ss *session) rset(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	clear(ss.box.deleted)
	n, size := ss.box.stat()
	return okReply("maildrop has " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
}
