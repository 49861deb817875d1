package account

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/mailsec/mailsec"
)

// maxLine bounds one line of the file; no setting is anywhere near it.
const maxLine = 64 << 10

// maxSettings bounds the settings one account gathers by inheritance.
const maxSettings = 10000

// setting is one "key value" line as written.
type setting struct {
	key, value string
	at         string // FILE:LINE
}

// section is the settings of one account (or of "defaults") in file order;
// a later setting of the same key wins.
type section struct {
	name, at string
	settings []setting
}

// File is a parsed configuration file.
type File struct {
	// Path is where the file was read from.
	Path     string
	accounts map[string]*section
	order    []string
}

// Names lists the accounts in the order the file defines them.
func (f *File) Names() []string { return append([]string(nil), f.order...) }

// parse reads the file's sections. defaults in force when an account starts
// are copied into it, as msmtp does; inheritance from other accounts is
// resolved here too, so a section holds everything that applies to it.
func parse(path string, r io.Reader) (*File, error) {
	f := &File{Path: path, accounts: map[string]*section{}}
	var defaults []setting
	var cur *section
	inDefaults := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		at := fmt.Sprintf("%s:%d", path, n)
		key, value, err := splitLine(sc.Text())
		if err != nil {
			return nil, configErr(at, "%v", err)
		}
		switch key {
		case "":
			continue
		case "defaults":
			if value != "" {
				return nil, configErr(at, "\"defaults\" takes no value")
			}
			inDefaults, cur = true, nil
			continue
		case "account":
			s, err := f.startAccount(value, at, defaults)
			if err != nil {
				return nil, err
			}
			inDefaults, cur = false, s
			continue
		case "eval":
			// Running a command to produce more configuration would let
			// whoever can write the file run code on every send without a
			// password-like key making that visible.
			return nil, configErr(at, "\"eval\" is not supported: write the settings out, or use passwordeval/token_eval for secrets")
		}
		if _, ok := known[key]; !ok {
			return nil, configErr(at, "unknown setting %q", key)
		}
		st := setting{key: key, value: value, at: at}
		switch {
		case inDefaults:
			defaults = append(defaults, st)
		case cur != nil:
			cur.settings = append(cur.settings, st)
		default:
			return nil, configErr(at, "setting %q outside any account: start one with \"account NAME\" or \"defaults\"", key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, configErr(fmt.Sprintf("%s:%d", path, n+1), "%v", err)
	}
	return f, nil
}

// startAccount handles "account NAME [: PARENT, ...]".
func (f *File) startAccount(value, at string, defaults []setting) (*section, error) {
	name, parents, hasParents := strings.Cut(value, ":")
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, " \t") {
		return nil, configErr(at, "account needs one name, as in \"account work\"")
	}
	if _, dup := f.accounts[name]; dup {
		return nil, configErr(at, "account %q is defined twice", name)
	}
	s := &section{name: name, at: at, settings: append([]setting(nil), defaults...)}
	if hasParents {
		for _, p := range strings.Split(parents, ",") {
			p = strings.TrimSpace(p)
			ps, ok := f.accounts[p]
			if !ok {
				return nil, configErr(at, "account %q inherits from %q, which is not defined before it", name, p)
			}
			s.settings = append(s.settings, ps.settings...)
			// Each parent's settings are copied, so "b : a, a" doubles
			// them: without a bound a 1 MiB file could ask for 2^n.
			if len(s.settings) > maxSettings {
				return nil, configErr(at, "account %q inherits more than %d settings", name, maxSettings)
			}
		}
	}
	f.accounts[name] = s
	f.order = append(f.order, name)
	return s, nil
}

// splitLine splits one line into key and value, removing comments and
// quotes. An empty key means a blank or comment line.
func splitLine(line string) (string, string, error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", nil
	}
	key, rest, _ := strings.Cut(line, " ")
	if k, r, ok := strings.Cut(key, "\t"); ok {
		key, rest = k, r+" "+rest
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return key, "", nil
	}
	if rest[0] != '"' {
		// An unquoted value ends at a comment, as in msmtp.
		if i := strings.Index(rest, "#"); i >= 0 {
			rest = strings.TrimSpace(rest[:i])
		}
		return key, rest, nil
	}
	var b strings.Builder
	for i := 1; i < len(rest); i++ {
		c := rest[i]
		switch c {
		case '\\':
			if i+1 == len(rest) {
				return "", "", fmt.Errorf("unfinished escape in the value of %q", key)
			}
			i++
			b.WriteByte(rest[i])
		case '"':
			tail := strings.TrimSpace(rest[i+1:])
			if tail != "" && tail[0] != '#' {
				return "", "", fmt.Errorf("text after the quoted value of %q", key)
			}
			return key, b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("the quoted value of %q has no closing quote", key)
}

func configErr(at, format string, args ...any) error {
	return mailsec.Errorf(mailsec.Config, "config", nil, "%s: %s", at, fmt.Sprintf(format, args...))
}
