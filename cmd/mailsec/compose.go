package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// composeSpec is a message built from flags instead of read from stdin.
type composeSpec struct {
	from          nameAddr
	subject, body string
	to, cc        []nameAddr
	attach        []string
	// fields are the --header fields, replacing the composed fields of
	// the same name.
	fields []headerField
}

// compose writes an RFC 5322 message with a text part and the attachments
// into a private temporary file and returns it positioned at the start.
func compose(s composeSpec) (*os.File, error) {
	return tempMessage("compose", "mailsec-compose-*", func(f *os.File) error { return writeComposed(f, s) })
}

// privateTemp creates a temporary file and removes its name at once, so
// that the message in it is reachable only through the returned handle
// and goes away with it, whatever way the process ends. op names the step
// in the error.
func privateTemp(op, pattern string) (*os.File, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Data, op, err, "cannot create a temporary file")
	}
	os.Remove(f.Name())
	return f, nil
}

// tempMessage writes a message with write into a privateTemp file and
// returns the file positioned at the start; on error the file is closed.
func tempMessage(op, pattern string, write func(*os.File) error) (*os.File, error) {
	f, err := privateTemp(op, pattern)
	if err != nil {
		return nil, err
	}
	if err := write(f); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, mailsec.Errorf(mailsec.Data, op, err, "cannot rewind the message")
	}
	return f, nil
}

func writeComposed(w io.Writer, s composeSpec) error {
	bw := bufio.NewWriter(w)
	id := make([]byte, 12)
	rand.Read(id)
	domain := "localhost"
	if at := strings.LastIndexByte(s.from.addr, '@'); at >= 0 {
		domain = s.from.addr[at+1:]
	}
	h := [][2]string{{"From", s.from.header()}, {"To", headerList(s.to)}}
	if len(s.cc) > 0 {
		h = append(h, [2]string{"Cc", headerList(s.cc)})
	}
	h = append(h, [][2]string{
		{"Subject", mime.QEncoding.Encode("utf-8", s.subject)},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id) + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
	}...)
	for _, kv := range h {
		if !slices.ContainsFunc(s.fields, func(f headerField) bool { return strings.EqualFold(f.name, kv[0]) }) {
			fmt.Fprintf(bw, "%s: %s\r\n", kv[0], kv[1])
		}
	}
	for _, f := range s.fields {
		fmt.Fprintf(bw, "%s: %s\r\n", f.name, f.value)
	}
	text := func(pw io.Writer) error {
		qp := quotedprintable.NewWriter(pw)
		if _, err := io.WriteString(qp, s.body); err != nil {
			return err
		}
		return qp.Close()
	}
	if len(s.attach) == 0 {
		fmt.Fprint(bw, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := text(bw); err != nil {
			return mailsec.Errorf(mailsec.Data, "compose", err, "cannot write the body")
		}
		fmt.Fprint(bw, "\r\n")
		return flushErr(bw)
	}
	mw := multipart.NewWriter(bw)
	fmt.Fprintf(bw, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mw.Boundary())
	pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"}})
	if err == nil {
		err = text(pw)
	}
	for _, path := range s.attach {
		if err != nil {
			break
		}
		err = attach(mw, path)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return mailsec.Errorf(mailsec.Data, "compose", err, "cannot build the message")
	}
	return flushErr(bw)
}

// headerList writes addresses as an address-list field's value.
func headerList(ms []nameAddr) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.header()
	}
	return strings.Join(out, ", ")
}

// attach streams one file as a base64 part.
func attach(mw *multipart.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ctype := mime.TypeByExtension(filepath.Ext(path))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	name := filepath.Base(path)
	pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ctype},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": name})}})
	if err != nil {
		return err
	}
	// 76-character lines (RFC 2045 section 6.8).
	enc := base64.NewEncoder(base64.StdEncoding, &lineWrapper{w: pw})
	if _, err := io.Copy(enc, f); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(pw, "\r\n")
	return err
}

// lineWrapper breaks its input into CRLF-terminated lines of 76 octets.
type lineWrapper struct {
	w   io.Writer
	col int
}

func (l *lineWrapper) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n, p, l.col = n+k, p[k:], l.col+k
		if l.col == 76 {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}

func flushErr(bw *bufio.Writer) error {
	if err := bw.Flush(); err != nil {
		return mailsec.Errorf(mailsec.Data, "compose", err, "cannot write the message")
	}
	return nil
}
