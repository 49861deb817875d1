package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
)

// jsonError is the "error" member of a --json result.
type jsonError struct {
	Code    string         `json:"code"`
	Number  int            `json:"number"`
	Op      string         `json:"op,omitempty"`
	Message string         `json:"message"`
	Reply   *mailsec.Reply `json:"reply,omitempty"`
	Exit    int            `json:"exit"`
}

func toJSONError(err error) *jsonError {
	if err == nil {
		return nil
	}
	je := &jsonError{Message: err.Error(), Exit: exitCode(err)}
	var (
		me *mailsec.Error
		ue usageError
	)
	switch {
	case errors.As(err, &me):
		je.Code, je.Number, je.Op, je.Reply = me.Code.String(), int(me.Code), me.Op, me.Reply
	case errors.As(err, &ue):
		je.Code = "Usage"
	default:
		je.Code = "Internal"
	}
	return je
}

// printJSON writes v as one JSON object on stdout.
func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// flagError reports a command line the flag parser refused. The command
// never runs then, so when --json was asked for the failure is printed as
// JSON here: a script reading stdout gets its object on every failure path.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() != "" && ne.GetSpecifiedName() != "" {
		// pflag repeats the whole argument ("-pS3cret", as mysql takes a
		// password), and secrets must never come back out of argv: name
		// only the unknown letter.
		err = fmt.Errorf("unknown shorthand flag: -%c", []rune(ne.GetSpecifiedName())[0])
	}
	ue := usageError{err}
	if wantsJSON(cmd, os.Args[1:]) {
		printJSON(struct {
			OK    bool       `json:"ok"`
			Error *jsonError `json:"error"`
		}{false, toJSONError(ue)})
	}
	return ue
}

// wantsJSON reports whether cmd has --json and it was set, or appears in
// args: parsing stops at the bad flag, so a later --json is not parsed yet.
func wantsJSON(cmd *cobra.Command, args []string) bool {
	f := cmd.Flags().Lookup("json")
	if f == nil {
		return false
	}
	if f.Changed {
		return f.Value.String() == "true"
	}
	for _, a := range args {
		switch v, ok := strings.CutPrefix(a, "--json="); {
		case a == "--":
			return false
		case a == "--json":
			return true
		case ok:
			b, _ := strconv.ParseBool(v)
			return b
		}
	}
	return false
}
