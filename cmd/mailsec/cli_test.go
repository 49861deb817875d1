package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mailsec/mailsec"
)

// runCLI runs the command tree on args as the process's own command line
// and returns what it printed on stdout and its exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runRoot(t, newRoot(), args...)
}

// runFresh is runCLI over a root holding only cmd, freshly built, so that
// no flag keeps a value from another test.
func runFresh(t *testing.T, cmd *cobra.Command, args ...string) (string, int) {
	t.Helper()
	return runRoot(t, rootOf(cmd), args...)
}

func runRoot(t *testing.T, root *cobra.Command, args ...string) (string, int) {
	t.Helper()
	oldArgs, oldStdout := os.Args, os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Args, os.Stdout = append([]string{"mailsec"}, args...), w
	defer func() { os.Args, os.Stdout = oldArgs, oldStdout }()
	root.SetArgs(args)
	out := make(chan string)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	err = root.Execute()
	w.Close()
	return <-out, exitCode(err)
}

// A command line the flag parser refuses still gets its JSON object, and
// a secret typed the mysql way ("-pSECRET") does not come back out.
func TestFlagErrorsAnswerInJSON(t *testing.T) {
	// First: the commands keep their flags' state between runs.
	if out, _ := runCLI(t, "send", "--bogus"); out != "" {
		t.Errorf("JSON without --json: %q", out)
	}
	for _, args := range [][]string{
		{"send", "--json", "--bogus"},
		{"fetch", "--bogus", "--json"},
		{"probe", "--timeout=abc", "--json"},
		{"send", "-pS3cret-Pa55", "--json"},
		{"send", "--json", "-zpS3cret-Pa55"},
	} {
		out, code := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		var res struct {
			OK    bool       `json:"ok"`
			Error *jsonError `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.OK || res.Error == nil ||
			res.Error.Code != "Usage" || res.Error.Exit != exitUsage {
			t.Errorf("%q: stdout %q (%v)", args, out, err)
		}
		if strings.Contains(out, "S3cret") {
			t.Errorf("%q: the secret came back: %s", args, out)
		}
	}
}

func TestExitCodesOfPOP3Refusals(t *testing.T) {
	refusal := func(op, respCode string) error {
		return &mailsec.Error{Code: mailsec.POPServer, Op: op, Reply: &mailsec.Reply{RespCode: respCode, Lines: []string{"no"}}}
	}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{refusal("PASS", ""), exitNoPerm},
		{refusal("USER", ""), exitNoPerm},
		{refusal("AUTH PLAIN", ""), exitNoPerm},
		{refusal("APOP", "AUTH"), exitNoPerm},
		{refusal("PASS", "IN-USE"), exitTempFail},
		{refusal("PASS", "SYS/TEMP"), exitTempFail},
		{refusal("RETR", ""), exitUnavailable},
		{refusal("STLS", ""), exitUnavailable},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.err, got, tc.want)
		}
	}
}
