// Command pop3fetch compares POP3 download clients against the shared
// Dovecot of scripts/peers.sh: it drops -n messages of -size octets into
// carol's Maildir, then lets each client download all of them over POP3S
// (implicit TLS), in the same run, and prints a Markdown table of wall
// time, throughput and peak memory (maximum resident set size). With -runs
// the clients take turns run after run, so that load from other work on
// the machine spreads over all of them, and the table shows medians.
//
//	go run ./bench/pop3fetch -env /tmp/peers-shared/env -n 1000 -size 65536 -runs 5
//
// The clients:
//   - mailsec fetch into a Maildir: one session, RETRs pipelined, every
//     message fsynced and renamed into new/ under a name carrying its UIDL,
//     new/ and the UIDL journal fsynced once at the end;
//   - curl, one pop3s:// URL per process: one login and one RETR per
//     connection, which is all a single curl URL does;
//   - curl with a URL range ([1-N]) in one process: its best batch form,
//     reusing the connection for every RETR;
//   - fetchmail (keep, fetchall) handing each message to an MDA that writes
//     it to a file, its nearest to a Maildir without a local MTA.
//
// mailsec and curl's batch form run again on -memdir (a tmpfs), where the
// disk costs nothing. -memcheck then fetches a single 1 MiB and a single
// 100 MiB message with mailsec: the peak RSS must not grow with the size.
//
// Each client writes into its own fresh directory under -work; the files
// are counted so that no client is timed for an incomplete download.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// peer is how the clients reach carol's maildrop.
type peer struct {
	host, port, user, pass, ca, name string
}

// url is the pop3s:// base URL, with the certificate's name as host.
func (p peer) url() string { return "pop3s://" + p.name + ":" + p.port + "/" }

// resolve maps the certificate's name to the peers' address for curl.
func (p peer) resolve() string { return p.name + ":" + p.port + ":" + p.host }

// client is one row of the table: fn downloads into out and returns the
// peak RSS in KiB.
type client struct {
	name, form string
	n          int
	bytes      int64
	fn         func(out string) (int64, error)
}

// result is one timed run of a client.
type result struct {
	d   time.Duration
	rss int64
	err error
}

func main() {
	envFile := flag.String("env", "/tmp/peers-shared/env", "env file written by scripts/peers.sh start")
	n := flag.Int("n", 1000, "messages")
	size := flag.Int("size", 64<<10, "message size in octets")
	work := flag.String("work", "", "work directory (default: a new temporary one, removed at the end)")
	mailsecBin := flag.String("mailsec", "", "mailsec binary (default: built from this checkout)")
	curlSingles := flag.Int("curl-singles", 0, "messages for the one-URL-per-process curl run (default: all)")
	memDir := flag.String("memdir", "/dev/shm", "a tmpfs where fsync costs nothing, for a second mailsec and curl run that compares transport alone (empty: skip)")
	only := flag.String("clients", "mailsec,curl-batch,curl-single,fetchmail", "the clients to run, comma-separated")
	runs := flag.Int("runs", 1, "runs of every client, interleaved; the table shows medians")
	memCheck := flag.Bool("memcheck", false, "also fetch a single 1 MiB and a single 100 MiB message with mailsec and compare peak RSS")
	flag.Parse()

	env, err := readEnv(*envFile)
	check(err)
	dir := *work
	if dir == "" {
		dir, err = os.MkdirTemp("", "pop3fetch-")
		check(err)
		defer os.RemoveAll(dir)
	}
	bin := *mailsecBin
	if bin == "" {
		bin = filepath.Join(dir, "mailsec-bin")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mailsec")
		build.Stderr = os.Stderr
		check(build.Run())
	}
	p := peer{host: env["PEERS_HOST"], port: env["POP3S_PORT"], user: env["CAROL_USER"], pass: env["CAROL_PASS"],
		ca: env["CA_PEM"], name: env["TLS_SERVER_NAME"]}
	maildir := env["CAROL_MAILDIR"]
	check(clearMaildir(maildir))
	defer clearMaildir(maildir)
	total := int64(0)
	for i := 1; i <= *n; i++ {
		k, err := drop(maildir, i, *size)
		check(err)
		total += k
	}
	singles := *curlSingles
	if singles <= 0 || singles > *n {
		singles = *n
	}
	want := map[string]bool{}
	for _, c := range strings.Split(*only, ",") {
		want[c] = true
	}

	disk := fsName(dir)
	var clients []client
	add := func(key string, c client) {
		if want[key] {
			clients = append(clients, c)
		}
	}
	add("mailsec", mailsecClient(bin, p, *n, total, "one fsync per message, "+disk))
	add("curl-batch", curlBatchClient(p, *n, total, "no fsync, "+disk))
	var mem string
	if *memDir != "" {
		mem, err = os.MkdirTemp(*memDir, "pop3fetch-")
		check(err)
		defer os.RemoveAll(mem)
		add("mailsec", mailsecClient(bin, p, *n, total, "tmpfs (fsync free)"))
		add("curl-batch", curlBatchClient(p, *n, total, "tmpfs"))
	}
	add("curl-single", curlSingleClient(p, singles, total/int64(*n)*int64(singles), "no fsync, "+disk))
	add("fetchmail", fetchmailClient(dir, p, *n, total, "no fsync, "+disk))

	fmt.Printf("%d messages of %d octets (%.1f MiB as stored) over POP3S from Dovecot %s, TLS 1.3, %s, %s/%s, %d CPUs, %d run(s).\n\n",
		*n, *size, float64(total)/(1<<20), env["DOVECOT_VERSION"], runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *runs)
	results := make([][]result, len(clients))
	for r := range *runs {
		for i, c := range clients {
			base := dir
			if mem != "" && strings.Contains(c.form, "tmpfs") {
				base = mem
			}
			out := filepath.Join(base, fmt.Sprintf("%s-%d-%d", c.name, i, r))
			check(os.MkdirAll(out, 0o700))
			start := time.Now()
			rss, err := c.fn(out)
			// The output stays until the end: deleting thousands of files
			// makes the next client's file creation slower on ext4, which
			// skips recently freed inodes.
			results[i] = append(results[i], result{d: time.Since(start), rss: rss, err: err})
		}
	}
	fmt.Println("| client | form | messages | median wall time | throughput | msgs/s | peak RSS | all runs |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---|")
	for i, c := range clients {
		printRow(c, results[i])
	}
	if *memCheck {
		memRows(bin, p, maildir, dir)
	}
}

// mailsecClient is mailsec fetch into a fresh Maildir.
func mailsecClient(bin string, p peer, n int, total int64, where string) client {
	return client{name: "mailsec fetch", form: "one session, pipelined RETR, Maildir + UIDL state, " + where, n: n, bytes: total,
		fn: func(out string) (int64, error) {
			box := filepath.Join(out, "Maildir")
			rss, err := runMailsec(bin, p, box)
			if err == nil {
				err = expectFiles(filepath.Join(box, "new"), n)
			}
			return rss, err
		}}
}

func runMailsec(bin string, p peer, box string) (int64, error) {
	cmd := exec.Command(bin, "fetch", "--server", p.host+":"+p.port, "--tls", "implicit", "--user", p.user,
		"--auth", "plain", "--ca-file", p.ca, "--tls-server-name", p.name, "--maildir", box)
	cmd.Env = append(os.Environ(), "MAILSEC_PASSWORD="+p.pass)
	return run(cmd)
}

// curlBatchClient is curl with a URL range in one process, its best batch
// form.
func curlBatchClient(p peer, n int, total int64, where string) client {
	return client{name: "curl", form: fmt.Sprintf("one process, URL range [1-%d], connection reused, %s", n, where), n: n, bytes: total,
		fn: func(out string) (int64, error) {
			cmd := exec.Command("curl", "-sS", "--fail", "--cacert", p.ca, "--resolve", p.resolve(), "-u", p.user+":"+p.pass,
				p.url()+fmt.Sprintf("[1-%d]", n), "-o", filepath.Join(out, "#1"))
			rss, err := run(cmd)
			if err == nil {
				err = expectFiles(out, n)
			}
			return rss, err
		}}
}

// curlSingleClient runs curl once per message, a new connection each time.
func curlSingleClient(p peer, n int, part int64, where string) client {
	return client{name: "curl", form: "one process and connection per message, " + where, n: n, bytes: part,
		fn: func(out string) (int64, error) {
			var peak int64
			for i := 1; i <= n; i++ {
				cmd := exec.Command("curl", "-sS", "--fail", "--cacert", p.ca, "--resolve", p.resolve(), "-u", p.user+":"+p.pass,
					p.url()+fmt.Sprint(i), "-o", filepath.Join(out, fmt.Sprint(i)))
				rss, err := run(cmd)
				if err != nil {
					return peak, err
				}
				peak = max(peak, rss)
			}
			return peak, expectFiles(out, n)
		}}
}

// fetchmailClient hands each message to an MDA writing a file, fetchmail's
// nearest to a Maildir without a local MTA.
func fetchmailClient(dir string, p peer, n int, total int64, where string) client {
	return client{name: "fetchmail", form: "one session, an MDA process writing a file per message, " + where, n: n, bytes: total,
		fn: func(out string) (int64, error) {
			rc := filepath.Join(out, "..", filepath.Base(out)+".fetchmailrc")
			ids := filepath.Join(out, "..", filepath.Base(out)+".fetchids")
			defer os.Remove(rc)
			defer os.Remove(ids)
			if err := os.WriteFile(rc, []byte(fmt.Sprintf(
				"set no bouncemail\nset no syslog\npoll %s service %s protocol pop3 auth password\n"+
					"  user %q password %q\n  ssl sslcertck sslcertfile %q sslcommonname %q\n"+
					"  keep fetchall no rewrite\n  mda \"/bin/sh -c 'cat > %s/$$'\"\n",
				p.host, p.port, p.user, p.pass, p.ca, p.name, out)), 0o600); err != nil {
				return 0, err
			}
			cmd := exec.Command("fetchmail", "-f", rc, "-i", ids, "--nosyslog")
			cmd.Env = append(os.Environ(), "HOME="+dir)
			rss, err := run(cmd)
			if err == nil {
				err = expectFiles(out, n)
			}
			return rss, err
		}}
}

// printRow prints a client's median run, its peak RSS over all runs and
// every run's wall time.
func printRow(c client, rs []result) {
	var ds []time.Duration
	var rss int64
	for _, r := range rs {
		if r.err != nil {
			fmt.Printf("| %s | %s | %d | failed: %v | | | | |\n", c.name, c.form, c.n, r.err)
			return
		}
		ds = append(ds, r.d)
		rss = max(rss, r.rss)
	}
	var all []string
	for _, d := range ds {
		all = append(all, fmt.Sprintf("%.2f", d.Seconds()))
	}
	slices.Sort(ds)
	d := ds[len(ds)/2]
	if len(ds)%2 == 0 {
		d = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	fmt.Printf("| %s | %s | %d | %.2f s | %.1f MiB/s | %.0f | %.1f MiB | %s |\n", c.name, c.form, c.n, d.Seconds(),
		float64(c.bytes)/(1<<20)/d.Seconds(), float64(c.n)/d.Seconds(), float64(rss)/1024, strings.Join(all, " "))
}

// memRows fetches one message of 1 MiB, then one of 100 MiB, with mailsec
// and prints the peak RSS of each: it must not grow with the message.
func memRows(bin string, p peer, maildir, dir string) {
	fmt.Println("\n| message size | mailsec fetch peak RSS |")
	fmt.Println("|---:|---:|")
	for _, size := range []int{1 << 20, 100 << 20} {
		check(clearMaildir(maildir))
		_, err := drop(maildir, 1, size)
		check(err)
		box := filepath.Join(dir, fmt.Sprintf("mem-%d", size))
		rss, err := runMailsec(bin, p, box)
		if err == nil {
			err = expectFiles(filepath.Join(box, "new"), 1)
		}
		os.RemoveAll(box)
		if err != nil {
			fmt.Printf("| %d MiB | failed: %v |\n", size>>20, err)
			continue
		}
		fmt.Printf("| %d MiB | %.1f MiB |\n", size>>20, float64(rss)/1024)
	}
}

// fsName names the file system type of dir, since fsync costs depend on it.
func fsName(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "disk"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794C7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs 0x%x", st.Type)
}

// run runs cmd and returns its peak resident set size in KiB.
func run(cmd *exec.Cmd) (int64, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %v: %s", filepath.Base(cmd.Path), err, strings.TrimSpace(lastLine(stderr.String())))
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return 0, nil
	}
	return ru.Maxrss, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func expectFiles(dir string, n int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) != n {
		return fmt.Errorf("%d files in %s, want %d", len(ents), dir, n)
	}
	return nil
}

// writeMessage writes message i, headers and base64-looking lines, size
// octets in all, a line at a time: holding a 100 MiB message would count
// in the peak RSS of the clients, since a child shares its parent's memory
// until it execs.
func writeMessage(w *bufio.Writer, i, size int) (int, error) {
	n, _ := fmt.Fprintf(w, "From: bench@example.test\nTo: carol@example.test\nSubject: bench %d\nMessage-ID: <bench-%d@example.test>\n\n", i, i)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	line := make([]byte, 77)
	r := rand.New(rand.NewPCG(uint64(i), 1))
	for n < size {
		for j := range 76 {
			line[j] = alphabet[r.IntN(64)]
		}
		line[76] = '\n'
		k, _ := w.Write(line[:min(77, size-n)])
		n += k
	}
	return n, w.Flush()
}

// drop puts message i into the Maildir's new/ owned by the vmail user, as
// Dovecot's delivery would, and returns its size (at least the headers).
func drop(maildir string, i, size int) (int64, error) {
	path := filepath.Join(maildir, "new", fmt.Sprintf("%d.M%dP%d.bench", time.Now().Unix(), i, os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := writeMessage(bufio.NewWriter(f), i, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	st, serr := os.Stat(maildir)
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, err
	}
	sys := st.Sys().(*syscall.Stat_t)
	return int64(n), os.Chown(path, int(sys.Uid), int(sys.Gid))
}

func clearMaildir(maildir string) error {
	for _, sub := range []string{"new", "cur", "tmp"} {
		ents, err := os.ReadDir(filepath.Join(maildir, sub))
		if err != nil {
			return err
		}
		for _, e := range ents {
			os.Remove(filepath.Join(maildir, sub, e.Name()))
		}
	}
	return nil
}

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		env[k] = strings.ReplaceAll(v, `\`, "")
	}
	return env, sc.Err()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "pop3fetch:", err)
		os.Exit(1)
	}
}
