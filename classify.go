package mailsec

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// NetError wraps a network failure met during op. fallback is the code to
// use when the cause is not more specific: SocketTx for writes, SocketRx for
// reads, TCPConnect for dialling. A deadline becomes Timeout, a canceled
// context Canceled and a failed name lookup DNS, whatever the fallback, so
// callers can tell "no such host" from "host down" from "too slow".
func NetError(op string, fallback Code, err error) error {
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		return err
	}
	code := fallback
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		code = Canceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		code = Timeout
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			code = Timeout
		} else {
			code = DNS
		}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		code = TCPConnect
	case fallback == SocketRx && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return &Error{Code: SocketRx, Op: op, Detail: "the server closed the connection", Err: err}
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			code = Timeout
		}
	}
	return &Error{Code: code, Op: op, Err: err}
}
