package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mailsec/mailsec"
)

// Exit codes from sysexits.h.
const (
	exitOK          = 0
	exitUsage       = 64
	exitData        = 65
	exitNoHost      = 68
	exitUnavailable = 69
	exitSoftware    = 70
	exitTempFail    = 75
	exitProtocol    = 76
	exitNoPerm      = 77
	exitConfig      = 78
)

// usageError marks a mistake in the command line.
type usageError struct{ error }

// exitCode maps an error to its sysexits code. A 4xx reply or a network
// failure is temporary (75), unlike msmtp which answers a 4xx RCPT with 69:
// cron jobs and queues retry on 75.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	if r := mailsec.ReplyOf(err); r != nil {
		switch {
		case r.Temporary():
			return exitTempFail
		case r.Code == 535 || r.Code == 534 || r.Code == 538 || r.Code == 530 || r.RespCode == "AUTH":
			return exitNoPerm
		case r.Code == 0 && popLogin(err):
			// Many POP3 servers refuse a login with a bare -ERR, without
			// the [AUTH] code of RFC 3206; it is still a refused login.
			return exitNoPerm
		case r.Code >= 500:
			return exitUnavailable
		}
	}
	switch mailsec.CodeOf(err) {
	case mailsec.DNS:
		return exitNoHost
	case mailsec.TCPConnect, mailsec.SocketTx, mailsec.SocketRx, mailsec.Socket, mailsec.Timeout,
		mailsec.ProxyNoConn, mailsec.ProxySocket, mailsec.ProxyServerClosed:
		return exitTempFail
	case mailsec.TLSCertName, mailsec.TLSCertificate, mailsec.AuthUnavailable,
		mailsec.ProxyAuthRequired, mailsec.ProxyAuthFailed, mailsec.ProxyAuthTypeUnknown:
		return exitNoPerm
	case mailsec.TLS, mailsec.TLSProtocol, mailsec.Protocol, mailsec.ProxyUnexpected, mailsec.ProxyException:
		return exitProtocol
	case mailsec.StartTLSUnavailable, mailsec.Unsupported, mailsec.ProxyRequestFailed,
		mailsec.SMTPServer, mailsec.POPServer:
		return exitUnavailable
	case mailsec.Config:
		return exitConfig
	case mailsec.Data:
		return exitData
	case mailsec.Canceled:
		return exitTempFail
	}
	return exitSoftware
}

// popLogin reports whether err answers a POP3 login command: USER, PASS,
// APOP or AUTH (RFC 1939 section 7, RFC 5034).
func popLogin(err error) bool {
	var me *mailsec.Error
	if !errors.As(err, &me) {
		return false
	}
	cmd, _, _ := strings.Cut(me.Op, " ")
	return cmd == "USER" || cmd == "PASS" || cmd == "APOP" || cmd == "AUTH"
}

// report prints err for a human on stderr and returns the exit code. The
// message may quote a server's reply, so control characters are escaped.
func report(err error) int {
	fmt.Fprintln(os.Stderr, "mailsec:", mailsec.Printable(err.Error()))
	return exitCode(err)
}
