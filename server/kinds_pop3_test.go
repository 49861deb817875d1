package server

import (
	"strings"
	"testing"
)

// A POP3 login always needs TLS, so a plain pop3 listener cannot be
// configured as "may".
func TestPOP3ListenerPolicy(t *testing.T) {
	_, err := Parse("data_dir = 'x'\n[[listener]]\naddress='127.0.0.1:1'\nkind='pop3'\ntls='may'\n")
	if err == nil || !strings.Contains(err.Error(), "STLS") {
		t.Errorf("pop3 with tls=may: %v", err)
	}
	if _, err := Parse("data_dir = 'x'\n[[listener]]\naddress='127.0.0.1:1'\nkind='pop3'\n"); err != nil {
		t.Error(err)
	}
}
