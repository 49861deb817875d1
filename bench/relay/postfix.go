package main

import (
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/bench/sink"
)

// postfixInstance is a private Postfix: its own config_directory and
// queue_directory in a temporary directory, an smtpd on 127.0.0.1:port
// that relays for 127.0.0.0/8 without AUTH (STARTTLS offered), and
// relayhost = [sink]. Everything else is Postfix's default, queue
// settings included; its queue files are always fsynced before the 250.
type postfixInstance struct {
	dir, etc, spool string
	addr            string
	roots           *x509.CertPool
	version         string
}

// postfixAvailable says whether a private Postfix can be started: root
// and the postfix package.
func postfixAvailable() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "not running as root (Postfix's master starts as root)"
	}
	for _, p := range []string{"postfix", "postconf"} {
		if _, err := exec.LookPath(p); err != nil {
			return false, p + " is not installed (apt-get install postfix)"
		}
	}
	if _, err := os.Stat("/usr/share/postfix/master.cf.dist"); err != nil {
		return false, "no /usr/share/postfix/master.cf.dist"
	}
	return true, ""
}

// startPostfix starts the instance, relaying everything to sinkAddr.
// With chunking false the smtpd does not announce CHUNKING (see -postfix-chunking).
func startPostfix(sinkAddr string, chunking bool) (*postfixInstance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d, err := os.MkdirTemp("", "benchrelay-postfix-")
	if err != nil {
		return nil, err
	}
	os.Chmod(d, 0o755)
	p := &postfixInstance{dir: d, etc: filepath.Join(d, "etc"), spool: filepath.Join(d, "spool"),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	fail := func(err error) (*postfixInstance, error) {
		p.stop()
		return nil, err
	}
	for _, sub := range []string{p.etc, p.spool, filepath.Join(d, "data")} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fail(err)
		}
	}
	certPEM, keyPEM, err := sink.SelfSignedPEM()
	if err != nil {
		return fail(err)
	}
	keyFile, certFile := filepath.Join(d, "key.pem"), filepath.Join(d, "cert.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return fail(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AppendCertsFromPEM(certPEM)
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
config_directory = %[1]s
queue_directory = %[2]s
data_directory = %[3]s/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[3]s/maillog
maillog_file_prefixes = %[3]s
syslog_name = postfix-benchrelay
myhostname = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [%[4]s]:%[5]s
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_chain_files = %[6]s, %[7]s
smtpd_tls_security_level = may
smtp_tls_security_level = may
smtpd_tls_session_cache_database =
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_error_sleep_time = 0
`, p.etc, p.spool, d, hostOf(sinkAddr), portOf(sinkAddr), keyFile, certFile)
	if err := os.WriteFile(filepath.Join(p.etc, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return fail(err)
	}
	dist, err := os.ReadFile("/usr/share/postfix/master.cf.dist")
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(p.etc, "master.cf"), dist, 0o644); err != nil {
		return fail(err)
	}
	service := fmt.Sprintf("%s/inet = %s inet n - n - - smtpd", p.addr, p.addr)
	if !chunking {
		service += " -o smtpd_discard_ehlo_keywords=chunking"
	}
	// The stock service table without the port 25 listener and chroot,
	// plus our smtpd; as bench/smtpserve/postfix.sh does.
	for _, args := range [][]string{
		{"postconf", "-c", p.etc, "-M#", "smtp/inet"},
		{"postconf", "-c", p.etc, "-F", "*/*/chroot = n"},
		{"postconf", "-c", p.etc, "-Me", service},
		{"postfix", "-c", p.etc, "set-permissions"},
		{"postfix", "-c", p.etc, "start"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out))
		}
	}
	if out, err := exec.Command("postconf", "-d", "-h", "mail_version").Output(); err == nil {
		p.version = strings.TrimSpace(string(out))
	}
	for range 100 {
		if c, err := net.Dial("tcp", p.addr); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fail(fmt.Errorf("postfix: nothing listens on %s", p.addr))
}

// stop stops the instance and removes its directory.
func (p *postfixInstance) stop() {
	exec.Command("postfix", "-c", p.etc, "stop").Run()
	// master waits for its children; give it a moment before removing
	// the queue under them.
	for range 50 {
		if p.masterPID() == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.RemoveAll(p.dir)
}

// masterPID is the running master's process ID, 0 when none.
func (p *postfixInstance) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.spool, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0
	}
	return pid
}

// pids are the master and its children now running (qmgr, pickup,
// tlsmgr, idle smtpd and smtp processes, ...). Counting them with
// inheritance also counts the children master forks later.
func (p *postfixInstance) pids() []int {
	m := p.masterPID()
	if m == 0 {
		return nil
	}
	return append([]int{m}, childrenOf(m)...)
}

// queued counts the files in the instance's queue directories: zero once
// every message is delivered and removed.
func (p *postfixInstance) queued() int {
	n := 0
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt"} {
		n += countFiles(filepath.Join(p.spool, q))
	}
	return n
}

// countFiles counts the regular files under dir.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// childrenOf lists the processes whose parent is pid (Linux /proc).
func childrenOf(pid int) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range procs {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fs) > 1 && fs[1] == strconv.Itoa(pid) {
			c, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			out = append(out, c)
		}
	}
	return out
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
