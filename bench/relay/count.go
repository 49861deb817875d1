package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// syncCounter counts the sync system calls (fsync, fdatasync,
// sync_file_range) of a set of processes and of the children they fork
// while it runs, between start and stop.
type syncCounter struct {
	tool string // "perf" or "strace"
	cmd  *exec.Cmd
	out  string
}

// counts is what a syncCounter saw.
type counts struct {
	syncs int64
	cpuMS float64 // task-clock of the processes, perf only; -1 when unknown
}

// counterTool picks the counting tool: perf stat on the syscall
// tracepoints when it works (in-kernel counters, cheap enough to leave on
// during measured runs), else strace (which stops the process at every
// traced call, so it gets a run of its own).
func counterTool(want string) (string, error) {
	if want != "auto" && want != "perf" && want != "strace" {
		return "", fmt.Errorf("-count: %q is neither auto, perf nor strace", want)
	}
	if want == "auto" || want == "perf" {
		if _, err := exec.LookPath("perf"); err == nil {
			out, err := exec.Command("perf", "stat", "-x,", "-e", "syscalls:sys_enter_fsync", "true").CombinedOutput()
			if err == nil && !strings.Contains(string(out), "not supported") && !strings.Contains(string(out), "<not") {
				return "perf", nil
			}
		}
		if want == "perf" {
			return "", fmt.Errorf("perf stat cannot count syscalls:sys_enter_fsync here")
		}
	}
	if _, err := exec.LookPath("strace"); err != nil {
		return "", fmt.Errorf("neither perf (with syscall tracepoints) nor strace is available (apt-get install strace)")
	}
	return "strace", nil
}

// startCounting attaches tool to pids (and, through inheritance or -f,
// to the processes they start later).
func startCounting(tool string, pids []int) (*syncCounter, error) {
	f, err := os.CreateTemp("", "benchrelay-count-")
	if err != nil {
		return nil, err
	}
	f.Close()
	c := &syncCounter{tool: tool, out: f.Name()}
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	if tool == "perf" {
		c.cmd = exec.Command("perf", "stat", "-x,", "-o", c.out,
			"-e", "task-clock,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_sync_file_range",
			"-p", strings.Join(ps, ","))
	} else {
		args := []string{"-f", "-c", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", c.out}
		for _, p := range ps {
			args = append(args, "-p", p)
		}
		c.cmd = exec.Command("strace", args...)
	}
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		os.Remove(c.out)
		return nil, err
	}
	// Both attach asynchronously; give them time to be in place.
	time.Sleep(500 * time.Millisecond)
	return c, nil
}

// stop detaches and returns the counts.
func (c *syncCounter) stop() (counts, error) {
	defer os.Remove(c.out)
	c.cmd.Process.Signal(syscall.SIGINT)
	c.cmd.Wait()
	res := counts{cpuMS: -1}
	f, err := os.Open(c.out)
	if err != nil {
		return res, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := false
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if c.tool == "perf" {
			// value,unit,event,...
			fs := strings.Split(l, ",")
			if len(fs) < 3 {
				continue
			}
			v, err := strconv.ParseFloat(fs[0], 64)
			if err != nil {
				continue
			}
			switch {
			case fs[2] == "task-clock":
				res.cpuMS = v
			case strings.HasPrefix(fs[2], "syscalls:"):
				res.syncs += int64(v)
				found = true
			}
			continue
		}
		// strace -c: "% time seconds usecs/call calls errors syscall".
		fs := strings.Fields(l)
		if len(fs) >= 5 && (fs[len(fs)-1] == "fsync" || fs[len(fs)-1] == "fdatasync" || fs[len(fs)-1] == "sync_file_range") {
			if v, err := strconv.ParseInt(fs[3], 10, 64); err == nil {
				res.syncs += v
			}
		}
		found = true
	}
	if !found {
		return res, fmt.Errorf("%s wrote no counts", c.tool)
	}
	return res, nil
}

// queueFiles counts the bodies in the embedded queue's msg/ directory.
func queueFiles(queueDir string) int { return countFiles(filepath.Join(queueDir, "msg")) }
