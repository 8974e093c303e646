package labels

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// canonicalRE is the canonical form, written out independently of the parser.
var canonicalRE = regexp.MustCompile(`^spotrunner/[a-z0-9][a-z0-9_-]{0,39}(/(cpu=[1-9][0-9]*(,ram=[1-9][0-9]*)?|ram=[1-9][0-9]*))?$`)

// FuzzParse seeds with every input of TestParse and checks what must hold for any input: Parse
// never panics; a success yields a canonical label (matching canonicalRE, ASCII lowercase, at most
// MaxLength bytes) that parses back to the identical Spec, and survives case and whitespace changes;
// a failure is an *Error matching ErrInvalid with a one-line ASCII reason; Find agrees with Parse.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, label string) {
		spec, err := Parse(label)
		if err != nil {
			checkError(t, label, err)
		} else {
			checkSpec(t, label, spec)
		}

		found, ok, ferr := Find([]string{"self-hosted", label})
		if ok != IsSpotRunner(label) {
			t.Errorf("Find([self-hosted %q]) ok = %v, IsSpotRunner = %v", label, ok, !ok)
		}
		if ok && (found != spec || (ferr == nil) != (err == nil)) {
			t.Errorf("Find([self-hosted %q]) = %+v, %v; Parse = %+v, %v", label, found, ferr, spec, err)
		}
		if err == nil && !ok {
			t.Errorf("Parse(%q) succeeded but Find does not see it", label)
		}
	})
}

func checkError(t *testing.T, label string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Parse(%q) error %v does not match ErrInvalid", label, err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q) error %v is a %T, want *Error", label, err, err)
	}
	if e.Reason == "" || nonASCII(e.Reason) >= 0 || strings.ContainsAny(e.Reason, "\n\r") {
		t.Errorf("Parse(%q) reason %q: want one non-empty line of ASCII", label, e.Reason)
	}
	if len(e.Label) > MaxLength+len("...") {
		t.Errorf("Parse(%q) error carries a %d-byte label", label, len(e.Label))
	}
}

func checkSpec(t *testing.T, label string, spec Spec) {
	t.Helper()
	c := spec.Label
	if !canonicalRE.MatchString(c) || len(c) > MaxLength || c != strings.ToLower(c) {
		t.Errorf("Parse(%q) canonical label %q is not canonical", label, c)
	}
	if spec.CPU < 0 || spec.CPU > MaxCPU || spec.RAMGiB < 0 || spec.RAMGiB > MaxRAMGiB {
		t.Errorf("Parse(%q) = %+v: out of bounds", label, spec)
	}
	if !IsSpotRunner(label) {
		t.Errorf("Parse(%q) succeeded but IsSpotRunner is false", label)
	}
	variants := []string{c, strings.ToUpper(label)}
	if len(label)+2 <= MaxLength {
		variants = append(variants, " "+label+"\t")
	}
	for _, v := range variants {
		again, err := Parse(v)
		if err != nil || again != spec {
			t.Errorf("Parse(%q) = %+v; Parse(%q) = %+v, %v: want the same Spec", label, spec, v, again, err)
		}
	}
}
