// Package mailsec holds what every part of the library shares: the error
// catalogue and the logging facilities. The protocol work lives in the
// sub-packages (smtp, pop3, sasl, security, tlsconf, dial, smtpd, pop3d).
package mailsec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Code identifies the kind of a failure. The numbers 1001-1407 are those of
// the CSMail/SSL ErrorInfo catalogue (docs/requirements.md) so that users migrating from
// it keep their tables; codes mailsec adds start above 1500.
//
// A Code is itself an error so that callers can write
// errors.Is(err, mailsec.TLSCertName).
type Code int

// The catalogue. Gaps in the numbering are codes CSMail/SSL reserves.
const (
	ProxyNoConn          Code = 1001 // no TCP connection to the proxy
	ProxySocket          Code = 1002 // socket error while talking to the proxy
	ProxyServerClosed    Code = 1003 // the proxy closed the connection
	ProxyException       Code = 1004 // internal error in the proxy exchange
	ProxyUnexpected      Code = 1005 // the proxy answered something unexpected
	ProxyRequestFailed   Code = 1006 // the proxy refused the request
	ProxyAuthRequired    Code = 1007 // the proxy wants credentials, none given
	ProxyAuthTypeUnknown Code = 1008 // no proxy auth method in common
	ProxyAuthFailed      Code = 1009 // the proxy rejected the credentials
	DNS                  Code = 1102 // the host name cannot be resolved
	TCPConnect           Code = 1103 // the TCP connection could not be made
	SocketTx             Code = 1104 // network error while sending
	SocketRx             Code = 1105 // network error while receiving
	Socket               Code = 1106 // other network error
	NotConnected         Code = 1107 // operation on a closed or unopened session
	POPServer            Code = 1201 // the POP3 server answered -ERR
	SMTPServer           Code = 1301 // the SMTP server answered 4xx or 5xx
	TLS                  Code = 1401 // TLS failure with no more specific code
	TLSConnected         Code = 1403 // TLS asked for on a connection already under TLS
	TLSNoContext         Code = 1404 // TLS operation on a connection without TLS
	TLSCertName          Code = 1405 // the certificate does not name the host
	TLSProtocol          Code = 1406 // TLS protocol failure (version, alert, handshake)
	TLSCertificate       Code = 1407 // the certificate chain is not trusted or invalid

	StartTLSUnavailable Code = 1501 // STARTTLS/STLS mandatory but not offered
	Timeout             Code = 1502 // a deadline passed
	AuthUnavailable     Code = 1503 // no usable authentication mechanism
	Protocol            Code = 1504 // the peer broke the protocol (bad reply, injection)
	Canceled            Code = 1505 // the caller's context was canceled
	Config              Code = 1506 // invalid options or configuration
	Data                Code = 1507 // the message or an address is malformed
	Unsupported         Code = 1508 // the server lacks an extension the request needs
)

var codeNames = map[Code]string{
	ProxyNoConn: "ProxyNoConn", ProxySocket: "ProxySocket", ProxyServerClosed: "ProxyServerClosed",
	ProxyException: "ProxyException", ProxyUnexpected: "ProxyUnexpected",
	ProxyRequestFailed: "ProxyRequestFailed", ProxyAuthRequired: "ProxyAuthRequired",
	ProxyAuthTypeUnknown: "ProxyAuthTypeUnknown", ProxyAuthFailed: "ProxyAuthFailed",
	DNS: "DNS", TCPConnect: "TCPConnect", SocketTx: "SocketTx", SocketRx: "SocketRx",
	Socket: "Socket", NotConnected: "NotConnected", POPServer: "POPServer",
	SMTPServer: "SMTPServer", TLS: "TLS", TLSConnected: "TLSConnected",
	TLSNoContext: "TLSNoContext", TLSCertName: "TLSCertName", TLSProtocol: "TLSProtocol",
	TLSCertificate: "TLSCertificate", StartTLSUnavailable: "StartTLSUnavailable",
	Timeout: "Timeout", AuthUnavailable: "AuthUnavailable", Protocol: "Protocol",
	Canceled: "Canceled", Config: "Config", Data: "Data", Unsupported: "Unsupported",
}

var codeText = map[Code]string{
	ProxyNoConn:          "cannot connect to the proxy",
	ProxySocket:          "network error talking to the proxy",
	ProxyServerClosed:    "the proxy closed the connection",
	ProxyException:       "internal error in the proxy exchange",
	ProxyUnexpected:      "unexpected answer from the proxy",
	ProxyRequestFailed:   "the proxy refused the request",
	ProxyAuthRequired:    "the proxy requires authentication",
	ProxyAuthTypeUnknown: "no proxy authentication method in common",
	ProxyAuthFailed:      "the proxy rejected the credentials",
	DNS:                  "the host name cannot be resolved",
	TCPConnect:           "cannot connect to the server",
	SocketTx:             "network error while sending",
	SocketRx:             "network error while receiving",
	Socket:               "network error",
	NotConnected:         "not connected",
	POPServer:            "the POP3 server reported an error",
	SMTPServer:           "the SMTP server reported an error",
	TLS:                  "TLS error",
	TLSConnected:         "the connection is already under TLS",
	TLSNoContext:         "the connection is not under TLS",
	TLSCertName:          "the server certificate does not match the host name",
	TLSProtocol:          "TLS protocol error",
	TLSCertificate:       "the server certificate is not valid",
	StartTLSUnavailable:  "the server does not offer STARTTLS",
	Timeout:              "timed out",
	AuthUnavailable:      "no usable authentication mechanism",
	Protocol:             "protocol violation by the peer",
	Canceled:             "canceled",
	Config:               "invalid configuration",
	Data:                 "malformed message or address",
	Unsupported:          "the server does not support what the request needs",
}

// String returns the code's name as used in JSON output ("TLSCertName").
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "Code(" + strconv.Itoa(int(c)) + ")"
}

// Error makes a bare Code usable as an error and as an errors.Is target.
func (c Code) Error() string {
	if t, ok := codeText[c]; ok {
		return t
	}
	return c.String()
}

// ParseCode returns the code whose name is s.
func ParseCode(s string) (Code, bool) {
	for c, n := range codeNames {
		if n == s {
			return c, true
		}
	}
	return 0, false
}

// Reply is a server's answer as the Error carries it: the SMTP reply code or
// 0 for POP3, the RFC 3463 enhanced status code when the server gave one,
// the RFC 3206 response code for POP3, the text lines, and how they were
// received.
type Reply struct {
	Code     int      `json:"code,omitempty"`
	Enhanced string   `json:"enhanced,omitempty"`
	RespCode string   `json:"resp_code,omitempty"`
	Lines    []string `json:"lines,omitempty"`
	// Channel says whether the text came inside a verified TLS session;
	// the clients set it from the session at the time of the reply.
	Channel Channel `json:"channel,omitempty"`
}

// Text joins the reply's lines with spaces.
func (r *Reply) Text() string { return strings.Join(r.Lines, " ") }

// Temporary reports whether the reply is a transient failure (4xx, or a POP3
// [SYS/TEMP] / [IN-USE]); a retry later may succeed.
func (r *Reply) Temporary() bool {
	if r == nil {
		return false
	}
	if r.Code != 0 {
		return r.Code >= 400 && r.Code < 500
	}
	return r.RespCode == "SYS/TEMP" || r.RespCode == "IN-USE"
}

// Error is the one error type of mailsec. Every failure a library call
// returns is an *Error (possibly wrapped by the caller).
type Error struct {
	Code   Code   // what kind of failure
	Op     string // what was being done: "dial", "STARTTLS", "RCPT TO", "handshake"
	Detail string // a sentence for humans; may be empty
	Reply  *Reply // the server's reply when the server refused
	Err    error  // the underlying error (OS, TLS, x509), if any
	// Channel says how the server text that Detail quotes (a malformed
	// line, say) was received: the zero value when Detail quotes none or
	// it came inside a verified TLS session. Error marks the rest.
	Channel Channel
}

// Error renders "op: detail: server reply: cause" leaving out the empty parts.
// A reply, or server text quoted in the detail, not received inside a
// verified TLS session carries its Channel's mark, so that forged text is
// never shown as the server's.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	switch {
	case e.Detail != "":
		b.WriteString(e.Detail)
		if m := e.Channel.Mark(); m != "" {
			b.WriteString(" " + m)
		}
	default:
		b.WriteString(e.Code.Error())
	}
	if e.Reply != nil {
		b.WriteString(": server said ")
		if e.Reply.Code != 0 {
			b.WriteString(strconv.Itoa(e.Reply.Code))
			b.WriteByte(' ')
		}
		if e.Reply.Enhanced != "" {
			b.WriteString(e.Reply.Enhanced)
			b.WriteByte(' ')
		}
		if e.Reply.RespCode != "" {
			b.WriteString("[" + e.Reply.RespCode + "] ")
		}
		b.WriteString(e.Reply.Text())
		if m := e.Reply.Channel.Mark(); m != "" {
			b.WriteString(" " + m)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	// The text may hold what a server sent; it must be safe to print.
	return Printable(b.String())
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches a Code target against e.Code, so errors.Is(err, mailsec.DNS)
// works through any wrapping.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && c == e.Code
}

// Errorf builds an *Error with a formatted detail.
func Errorf(code Code, op string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Op: op, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// CodeOf returns the code of the first *Error in err's chain, or 0.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// ReplyOf returns the server reply carried by err, or nil.
func ReplyOf(err error) *Reply {
	var e *Error
	if errors.As(err, &e) {
		return e.Reply
	}
	return nil
}
