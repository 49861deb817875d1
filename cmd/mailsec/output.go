package main

import (
	"encoding/json"
	"errors"
	"os"

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
