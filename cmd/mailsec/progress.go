package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress draws a progress bar on stderr, only when it is a terminal: a
// count and bytes, redrawn at most ten times a second. It is the fetch's
// fetch.Progress.
type progress struct {
	w          *os.File
	on         bool
	color      bool
	n, total   int
	bytes, max int64
	last       time.Time
}

// Start turns the bar on when there is something to download and stderr is
// a terminal.
func (p *progress) Start(total int, size int64) {
	p.on = total > 0 && term.IsTerminal(int(p.w.Fd()))
	p.color = os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	p.total, p.max = total, size
}

// Body counts the octets of one message as they arrive.
func (p *progress) Body(r io.Reader) io.Reader {
	if !p.on {
		return r
	}
	return &countingReader{r: r, p: p}
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.bytes += int64(n)
	c.p.draw(false)
	return n, err
}

// Downloaded counts one more message.
func (p *progress) Downloaded(int) {
	p.n++
	p.draw(false)
}

func (p *progress) finish() {
	if p.on {
		p.draw(true)
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw(force bool) {
	if !p.on || (!force && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 30
	frac := float64(p.n) / float64(p.total)
	if p.max > 0 {
		frac = min(float64(p.bytes)/float64(p.max), 1)
	}
	fill := int(frac * width)
	bar := strings.Repeat("#", fill) + strings.Repeat("-", width-fill)
	if p.color {
		bar = "\x1b[32m" + strings.Repeat("#", fill) + "\x1b[0m" + strings.Repeat("-", width-fill)
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d messages, %s/%s ", bar, p.n, p.total, humanBytes(p.bytes), humanBytes(p.max))
}

// humanBytes renders a size in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
