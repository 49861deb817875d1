package smtpd

import (
	"net"
	"time"
)

// deadlineReader sits between the connection and the session's
// bufio.Reader. Outside a message transfer the session sets one deadline per
// command itself; during DATA and BDAT every read gets a fresh progress
// deadline (CommandTimeout) capped by the transfer's overall deadline
// (DataTimeout), so a stalled client is cut off quickly and a trickling
// one (slowloris) eventually.
type deadlineReader struct {
	c        net.Conn
	data     bool
	end      time.Time
	progress time.Duration
}

// startData switches to per-read deadlines for a transfer.
func (d *deadlineReader) startData(progress, total time.Duration) {
	d.data, d.progress, d.end = true, progress, time.Now().Add(total)
}

// stopData ends a transfer; the session sets command deadlines again.
func (d *deadlineReader) stopData() { d.data = false }

// Read implements io.Reader.
func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.data {
		dl := time.Now().Add(d.progress)
		if dl.After(d.end) {
			dl = d.end
		}
		d.c.SetReadDeadline(dl)
	}
	return d.c.Read(p)
}
