// Package labels decides which GitHub Actions jobs are Spot Runner's and what they ask for, by
// parsing the job's spotrunner label.
//
// A job asks for a runner with
//
//	runs-on: [self-hosted, "spotrunner/<preset>[/<opt>=<value>[,<opt>=<value>]...]"]
//
// for example "spotrunner/linux-x64" or "spotrunner/linux-x64/cpu=4,ram=16". The grammar:
//
//   - Labels are case-insensitive, like GitHub's: surrounding ASCII whitespace is trimmed and ASCII
//     letters are lowercased before anything else is read.
//   - A label is at most [MaxLength] bytes as given (checked before any other work, so a huge input
//     costs nothing) and plain ASCII throughout: a look-alike such as a typographic hyphen or a
//     Cyrillic letter is an error that names the character, not a preset that silently never matches.
//   - The preset matches [a-z0-9][a-z0-9_-]* and is at most [MaxPresetLength] characters.
//   - At most one options segment follows the preset after a "/". It is a comma-separated list of
//     name=value pairs; whitespace around "," and "=" is tolerated and dropped, whitespace anywhere
//     else (inside the preset, inside a name or a value) is an error. Empty segments ("//", a trailing
//     "/", ",,", "cpu=") are errors.
//   - Options: cpu is the minimum number of vCPUs, 1 to [MaxCPU]; ram is the minimum memory in whole
//     GiB, 1 to [MaxRAMGiB]. Values are plain decimal integers: no sign, no decimal point, no leading
//     zeros. An unknown option, an option given twice (even with the same value) or a value out of
//     bounds is an error. Further options are one entry in the options table, with the same rules.
//   - The canonical form lowercases, drops optional whitespace and sorts the options by name, so
//     "SpotRunner/Linux-X64/ram=16, cpu=4" and "spotrunner/linux-x64/cpu=4,ram=16" are one label.
//
// The bounds are the grammar's absolute bounds; a preset may narrow them, which is why [Spec] carries
// the numbers. Every parse error is an [*Error] whose Reason is written for the user who wrote the
// label (the job is recorded rejected with it) and matches [ErrInvalid] under errors.Is.
package labels

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Prefix starts every label Spot Runner serves.
const Prefix = "spotrunner/"

// Limits of the grammar.
const (
	// MaxLength is the longest label accepted, in bytes as given (surrounding whitespace included).
	MaxLength = 256
	// MaxPresetLength is the longest preset name, in characters.
	MaxPresetLength = 40
	// MaxCPU is the largest minimum vCPU count a label may ask for.
	MaxCPU = 192
	// MaxRAMGiB is the largest minimum memory, in GiB, a label may ask for.
	MaxRAMGiB = 1024
)

// Spec is a parsed spotrunner label.
type Spec struct {
	Label  string // canonical form, e.g. "spotrunner/linux-x64/cpu=4,ram=16"
	Preset string
	CPU    int // minimum vCPU; 0 when not asked
	RAMGiB int // minimum GiB; 0 when not asked
}

// ErrInvalid matches every parse error under errors.Is.
var ErrInvalid = errors.New("invalid spotrunner label")

// Error is the type of every parse error; Reason is safe to show to users (status, CLI).
type Error struct {
	// Label is the label as given, cut to MaxLength bytes so that a huge input stays out of logs.
	// For a job with several spotrunner labels it is the first of them.
	Label string
	// Reason says what is wrong and how to write it instead. It is plain ASCII, one line, and
	// carries no internal detail.
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v %s: %s", ErrInvalid, strconv.QuoteToASCII(e.Label), e.Reason)
}

// Is reports whether target is ErrInvalid, so callers need not know the concrete type.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func invalid(label, format string, args ...any) *Error {
	return &Error{Label: clip(label), Reason: fmt.Sprintf(format, args...)}
}

// option is one name=value option of the grammar. Adding an option is adding an entry to options
// and a field to Spec; parsing, bounds, duplicates and the canonical order follow from the entry.
type option struct {
	name     string
	unit     string // plural, for reasons: "at most 192 vCPUs"
	min, max int
	get      func(Spec) int       // 0 when not asked
	set      func(Spec, int) Spec // by value: a pointer through a func value would put Spec on the heap
}

// options is sorted by name, which is the canonical order (TestOptionsTable checks).
var options = []option{
	{
		name: "cpu", unit: "vCPUs", min: 1, max: MaxCPU,
		get: func(s Spec) int { return s.CPU },
		set: func(s Spec, v int) Spec { s.CPU = v; return s },
	},
	{
		name: "ram", unit: "GiB", min: 1, max: MaxRAMGiB,
		get: func(s Spec) int { return s.RAMGiB },
		set: func(s Spec, v int) Spec { s.RAMGiB = v; return s },
	},
}

func lookupOption(name string) (int, bool) {
	for i := range options {
		if options[i].name == name {
			return i, true
		}
	}
	return 0, false
}

func optionNames() string {
	names := make([]string, len(options))
	for i := range options {
		names[i] = options[i].name
	}
	return strings.Join(names, ", ")
}

// IsSpotRunner reports whether label is addressed to Spot Runner: whether it starts with Prefix,
// ignoring ASCII case and leading whitespace. It says nothing about validity: "spotrunner/" alone is
// ours, and malformed.
func IsSpotRunner(label string) bool {
	s := label
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return len(s) >= len(Prefix) && asciiEqualFold(s[:len(Prefix)], Prefix)
}

// Parse parses one spotrunner label. Every error is an *Error matching ErrInvalid.
func Parse(label string) (Spec, error) {
	if len(label) > MaxLength {
		return Spec{}, invalid(label, "label is %d bytes long; the limit is %d", len(label), MaxLength)
	}
	if i := nonASCII(label); i >= 0 {
		return Spec{}, invalid(label, "%s at position %d; labels must be plain ASCII "+
			"(look for a typographic hyphen or a letter from another alphabet)", describeByte(label, i), i+1)
	}
	s := asciiLower(trimSpace(label))
	if !strings.HasPrefix(s, Prefix) {
		return Spec{}, invalid(label, "label does not start with %q", Prefix)
	}
	rest := s[len(Prefix):]
	switch {
	case rest == "" || rest[0] == '/':
		return Spec{}, invalid(label, "no preset name after %q; write %s<preset>, e.g. %slinux-x64", Prefix, Prefix, Prefix)
	case strings.HasSuffix(rest, "/") && strings.Count(rest, "/") == 1:
		return Spec{}, invalid(label, "label ends with \"/\"; remove it, or add options after it, e.g. /cpu=4")
	case strings.HasSuffix(rest, "/"):
		return Spec{}, invalid(label, "label ends with \"/\"; remove it")
	case strings.Contains(rest, "//"):
		return Spec{}, invalid(label, "label has an empty segment (\"//\")")
	case strings.Count(rest, "/") > 1:
		return Spec{}, invalid(label, "label has more than one options segment; put all options in one, "+
			"separated by commas, e.g. %slinux-x64/cpu=4,ram=16", Prefix)
	}
	preset, opts, hasOpts := strings.Cut(rest, "/")
	if reason := checkPreset(preset); reason != "" {
		return Spec{}, invalid(label, "%s", reason)
	}
	spec := Spec{Preset: preset}
	if hasOpts {
		var err error
		if spec, err = parseOptions(label, opts, spec); err != nil {
			return Spec{}, err
		}
	}
	spec.Label = canonical(s, spec)
	return spec, nil
}

// checkPreset returns why name is not a valid preset name, or "".
func checkPreset(name string) string {
	if len(name) > MaxPresetLength {
		return fmt.Sprintf("preset name is %d characters long; the limit is %d", len(name), MaxPresetLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		case c == '-' || c == '_':
			return fmt.Sprintf("preset name %q must start with a letter or a digit", name)
		case isSpace(c):
			return fmt.Sprintf("preset name %q contains whitespace", name)
		default:
			return fmt.Sprintf("preset name %q contains %q; use only letters, digits, \"-\" and \"_\"",
				name, string(c))
		}
	}
	return ""
}

// parseOptions reads the comma-separated options of a lowercased, ASCII label into spec.
func parseOptions(label, opts string, spec Spec) (Spec, error) {
	var seen uint64 // bit i: options[i] given
	for item := range strings.SplitSeq(opts, ",") {
		item = trimSpace(item)
		if item == "" {
			return Spec{}, invalid(label, "label has an empty option (\",,\", or a \",\" at the start or the end "+
				"of the options)")
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = trimSpace(name), trimSpace(value)
		switch {
		case !ok:
			return Spec{}, invalid(label, "option %q has no value; write name=value, e.g. cpu=4", item)
		case name == "":
			return Spec{}, invalid(label, "option %q has no name; write name=value, e.g. cpu=4", item)
		}
		i, known := lookupOption(name)
		if !known {
			return Spec{}, invalid(label, "unknown option %q; known options: %s", name, optionNames())
		}
		if seen&(1<<i) != 0 {
			return Spec{}, invalid(label, "option %s is given more than once", name)
		}
		seen |= 1 << i
		v, reason := options[i].parse(value)
		if reason != "" {
			return Spec{}, invalid(label, "%s", reason)
		}
		spec = options[i].set(spec, v)
	}
	return spec, nil
}

// parse reads a plain decimal integer within the option's bounds; it returns why not, or "".
func (o *option) parse(value string) (int, string) {
	if value == "" {
		return 0, fmt.Sprintf("option %s has no value; write %s=<number>, e.g. %s=%d", o.name, o.name, o.name, o.min)
	}
	for i := 0; i < len(value); i++ {
		if value[i] < '0' || value[i] > '9' {
			return 0, fmt.Sprintf("%s must be a whole number of %s from %d to %d, written with digits only "+
				"(no sign, no decimal point), got %q", o.name, o.unit, o.min, o.max, value)
		}
	}
	if len(value) > 1 && value[0] == '0' {
		// Leading zeros are rejected so that each value has one spelling (and 010 is not a puzzle).
		return 0, fmt.Sprintf("%s must be written without leading zeros, got %q", o.name, value)
	}
	v, err := strconv.Atoi(value)
	if err != nil || v > o.max { // Atoi fails on digits only when they overflow int.
		return 0, fmt.Sprintf("%s must be at most %d %s, got %s", o.name, o.max, o.unit, value)
	}
	if v < o.min {
		return 0, fmt.Sprintf("%s must be at least %d, got %d", o.name, o.min, v)
	}
	return v, ""
}

// canonical renders spec; it returns s itself, without allocating, when s is already canonical.
func canonical(s string, spec Spec) string {
	var buf [MaxLength]byte
	b := append(buf[:0], Prefix...)
	b = append(b, spec.Preset...)
	sep := byte('/')
	for i := range options {
		if v := options[i].get(spec); v != 0 {
			b = append(b, sep)
			b = append(b, options[i].name...)
			b = append(b, '=')
			b = strconv.AppendInt(b, int64(v), 10)
			sep = ','
		}
	}
	if string(b) == s {
		return s
	}
	return string(b)
}

// Find picks the job's spotrunner label out of all its labels (e.g. ["self-hosted",
// "spotrunner/linux-x64"]). ok=false, err=nil when the job has no spotrunner label (not ours);
// ok=true with err != nil when it is ours but malformed, including when it has several spotrunner
// labels that are not the same label once normalised.
func Find(jobLabels []string) (spec Spec, ok bool, err error) {
	var (
		first    string // the first spotrunner label as given
		firstKey string // its canonical form, or its trimmed form when it does not parse
	)
	for _, l := range jobLabels {
		if !IsSpotRunner(l) {
			continue
		}
		s, perr := Parse(l)
		key := s.Label
		if perr != nil {
			key = trimSpace(l)
		}
		if !ok {
			first, firstKey, spec, err, ok = l, key, s, perr, true
			continue
		}
		// Several spotrunner labels is the first thing to fix: report it even when one is also
		// malformed, so the user learns the whole story in one rejection.
		if !asciiEqualFold(key, firstKey) {
			return Spec{}, true, invalid(first, "job has more than one spotrunner label (%s and %s); "+
				"a job must ask for exactly one", strconv.QuoteToASCII(clip(firstKey)), strconv.QuoteToASCII(clip(key)))
		}
	}
	return spec, ok, err
}

// Set returns the job's label set normalised for exact comparisons: trimmed, lowercased (ASCII
// letters only, so the result is stable whatever the input bytes), empty labels dropped,
// deduplicated, sorted. The result is never nil.
//
// The spotrunner label is NOT canonicalised here: GitHub hands a job to a runner whose labels
// contain the job's labels as strings (ignoring case), so a job that wrote
// "spotrunner/x/ram=16,cpu=4" is only served by a runner registered with that spelling, and only
// a runner of that spelling counts against it.
func Set(jobLabels []string) []string {
	set := make([]string, 0, len(jobLabels))
	for _, l := range jobLabels {
		if l = trimSpace(l); l != "" {
			set = append(set, asciiLower(l))
		}
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// isSpace reports whether c is whitespace to trim or tolerate: ASCII only, since any other byte
// is an error.
func isSpace(c byte) bool {
	return c == ' ' || '\t' <= c && c <= '\r' // \t \n \v \f \r
}

// trimSpace is strings.TrimSpace for ASCII whitespace only: a no-break space is an error, not padding.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// nonASCII returns the index of the first byte of s that is not ASCII, or -1.
func nonASCII(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return i
		}
	}
	return -1
}

// describeByte names the non-ASCII character starting at s[i] in ASCII, for a reason.
func describeByte(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("label contains the byte 0x%02x, which is not valid UTF-8,", s[i])
	}
	return fmt.Sprintf("label contains the non-ASCII character %U %s", r, strconv.QuoteRuneToASCII(r))
}

// asciiLower lowercases ASCII letters and leaves every other byte alone; it returns s itself,
// without allocating, when there is nothing to lower. (strings.ToLower would also fold non-ASCII
// letters and rewrite invalid UTF-8.)
func asciiLower(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// asciiEqualFold is strings.EqualFold for ASCII letters only: strings.EqualFold would let the
// Kelvin sign match "k" and the long s match "s".
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// clip cuts s to MaxLength bytes so that an error never carries a huge input.
func clip(s string) string {
	if len(s) <= MaxLength {
		return s
	}
	return s[:MaxLength] + "..."
}
