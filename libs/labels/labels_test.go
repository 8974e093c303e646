package labels

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseCase is one row of TestParse; FuzzParse seeds its corpus with every input.
type parseCase struct {
	name    string
	in      string
	want    Spec
	wantErr *Error
}

// Inputs of exactly MaxLength and MaxLength+1 bytes. Only whitespace can make a valid label this
// long, so the padding sits where the grammar tolerates it.
var (
	long256 = "spotrunner/linux-x64/cpu=4," + strings.Repeat(" ", MaxLength-33) + "ram=16"
	long257 = "spotrunner/linux-x64/cpu=4," + strings.Repeat(" ", MaxLength-32) + "ram=16"
	huge    = Prefix + strings.Repeat("a", 1<<20)
)

// parseCases are the labels of the grammar's edge cases: each valid one must parse to its Spec,
// each invalid one must fail with exactly its Error (the reason is user-facing, so it is pinned).
var parseCases = []parseCase{
	// Valid labels and their normalisation.
	{
		name: "preset only",
		in:   "spotrunner/linux-x64",
		want: Spec{Label: "spotrunner/linux-x64", Preset: "linux-x64"},
	},
	{
		name: "cpu and ram",
		in:   "spotrunner/linux-x64/cpu=4,ram=16",
		want: Spec{Label: "spotrunner/linux-x64/cpu=4,ram=16", Preset: "linux-x64", CPU: 4, RAMGiB: 16},
	},
	{
		name: "options in any order",
		in:   "spotrunner/linux-x64/ram=16,cpu=4",
		want: Spec{Label: "spotrunner/linux-x64/cpu=4,ram=16", Preset: "linux-x64", CPU: 4, RAMGiB: 16},
	},
	{
		name: "cpu only",
		in:   "spotrunner/linux-arm64/cpu=2",
		want: Spec{Label: "spotrunner/linux-arm64/cpu=2", Preset: "linux-arm64", CPU: 2},
	},
	{
		name: "ram only",
		in:   "spotrunner/linux-arm64/ram=8",
		want: Spec{Label: "spotrunner/linux-arm64/ram=8", Preset: "linux-arm64", RAMGiB: 8},
	},
	{
		name: "case and whitespace normalised",
		in:   "  SpotRunner/Linux-X64/RAM = 16 ,\tCPU= 4\n",
		want: Spec{Label: "spotrunner/linux-x64/cpu=4,ram=16", Preset: "linux-x64", CPU: 4, RAMGiB: 16},
	},
	{
		name: "whitespace at the start of the options",
		in:   "spotrunner/linux-x64/ cpu=4",
		want: Spec{Label: "spotrunner/linux-x64/cpu=4", Preset: "linux-x64", CPU: 4},
	},
	{
		name: "upper bounds",
		in:   "spotrunner/big/cpu=192,ram=1024",
		want: Spec{Label: "spotrunner/big/cpu=192,ram=1024", Preset: "big", CPU: 192, RAMGiB: 1024},
	},
	{
		name: "lower bounds",
		in:   "spotrunner/small/cpu=1,ram=1",
		want: Spec{Label: "spotrunner/small/cpu=1,ram=1", Preset: "small", CPU: 1, RAMGiB: 1},
	},
	{
		name: "preset with digits, dash and underscore",
		in:   "spotrunner/0gpu_x-1",
		want: Spec{Label: "spotrunner/0gpu_x-1", Preset: "0gpu_x-1"},
	},
	{
		name: "preset of 40 characters",
		in:   Prefix + strings.Repeat("p", 40),
		want: Spec{Label: Prefix + strings.Repeat("p", 40), Preset: strings.Repeat("p", 40)},
	},
	{
		name: "256 bytes",
		in:   long256,
		want: Spec{Label: "spotrunner/linux-x64/cpu=4,ram=16", Preset: "linux-x64", CPU: 4, RAMGiB: 16},
	},
	{
		name: "256 bytes with surrounding whitespace",
		in:   "\t" + "spotrunner/linux-x64" + strings.Repeat(" ", MaxLength-21),
		want: Spec{Label: "spotrunner/linux-x64", Preset: "linux-x64"},
	},

	// Length, checked before anything else.
	{
		name:    "257 bytes",
		in:      long257,
		wantErr: &Error{Label: long257[:MaxLength] + "...", Reason: "label is 257 bytes long; the limit is 256"},
	},
	{
		name:    "1 MiB",
		in:      huge,
		wantErr: &Error{Label: huge[:MaxLength] + "...", Reason: "label is 1048587 bytes long; the limit is 256"},
	},

	// Non-ASCII anywhere.
	{
		name: "unicode hyphen",
		in:   "spotrunner/linux‐x64",
		wantErr: &Error{Label: "spotrunner/linux‐x64", Reason: `label contains the non-ASCII character U+2010 '\u2010' ` +
			"at position 17; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)"},
	},
	{
		name: "cyrillic letter",
		in:   "spotrunner/linuх-x64", // the х is U+0445
		wantErr: &Error{Label: "spotrunner/linuх-x64", Reason: `label contains the non-ASCII character U+0445 '\u0445' ` +
			"at position 16; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)"},
	},
	{
		name: "cyrillic letter in the prefix",
		in:   "ѕpotrunner/linux-x64", // the ѕ is U+0455
		wantErr: &Error{Label: "ѕpotrunner/linux-x64", Reason: `label contains the non-ASCII character U+0455 '\u0455' ` +
			"at position 1; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)"},
	},
	{
		name: "fullwidth digit",
		in:   "spotrunner/linux-x64/cpu=４",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=４", Reason: `label contains the non-ASCII character U+FF14 '\uff14' ` +
			"at position 26; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)"},
	},
	{
		name: "no-break space is not trimmed",
		in:   "spotrunner/linux-x64\u00a0",
		wantErr: &Error{Label: "spotrunner/linux-x64\u00a0", Reason: `label contains the non-ASCII character U+00A0 '\u00a0' ` +
			"at position 21; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)"},
	},
	{
		name: "invalid utf-8",
		in:   "spotrunner/linux\xffx64",
		wantErr: &Error{Label: "spotrunner/linux\xffx64", Reason: "label contains the byte 0xff, which is not valid UTF-8, " +
			"at position 17; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)"},
	},

	// Segments.
	{
		name:    "prefix alone",
		in:      "spotrunner/",
		wantErr: &Error{Label: "spotrunner/", Reason: `no preset name after "spotrunner/"; write spotrunner/<preset>, e.g. spotrunner/linux-x64`},
	},
	{
		name:    "empty preset segment",
		in:      "spotrunner//cpu=4",
		wantErr: &Error{Label: "spotrunner//cpu=4", Reason: `no preset name after "spotrunner/"; write spotrunner/<preset>, e.g. spotrunner/linux-x64`},
	},
	{
		name:    "trailing slash after the preset",
		in:      "spotrunner/linux-x64/",
		wantErr: &Error{Label: "spotrunner/linux-x64/", Reason: `label ends with "/"; remove it, or add options after it, e.g. /cpu=4`},
	},
	{
		name:    "trailing slash after the options",
		in:      "spotrunner/linux-x64/cpu=4/",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=4/", Reason: `label ends with "/"; remove it`},
	},
	{
		name:    "empty segment between slashes",
		in:      "spotrunner/linux-x64//cpu=4",
		wantErr: &Error{Label: "spotrunner/linux-x64//cpu=4", Reason: `label has an empty segment ("//")`},
	},
	{
		name: "two options segments",
		in:   "spotrunner/linux-x64/cpu=4/ram=16",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=4/ram=16", Reason: "label has more than one options segment; " +
			"put all options in one, separated by commas, e.g. spotrunner/linux-x64/cpu=4,ram=16"},
	},
	{
		name:    "empty option between commas",
		in:      "spotrunner/linux-x64/cpu=4,,ram=16",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=4,,ram=16", Reason: `label has an empty option (",,", or a "," at the start or the end of the options)`},
	},
	{
		name:    "trailing comma",
		in:      "spotrunner/linux-x64/cpu=4, ",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=4, ", Reason: `label has an empty option (",,", or a "," at the start or the end of the options)`},
	},
	{
		name:    "empty value",
		in:      "spotrunner/linux-x64/cpu=",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=", Reason: "option cpu has no value; write cpu=<number>, e.g. cpu=1"},
	},
	{
		name:    "no equals sign",
		in:      "spotrunner/linux-x64/cpu4",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu4", Reason: `option "cpu4" has no value; write name=value, e.g. cpu=4`},
	},
	{
		name:    "no name",
		in:      "spotrunner/linux-x64/=4",
		wantErr: &Error{Label: "spotrunner/linux-x64/=4", Reason: `option "=4" has no name; write name=value, e.g. cpu=4`},
	},
	{
		name:    "not a spotrunner label",
		in:      "self-hosted",
		wantErr: &Error{Label: "self-hosted", Reason: `label does not start with "spotrunner/"`},
	},

	// Preset.
	{
		name:    "preset of 41 characters",
		in:      Prefix + strings.Repeat("p", 41),
		wantErr: &Error{Label: Prefix + strings.Repeat("p", 41), Reason: "preset name is 41 characters long; the limit is 40"},
	},
	{
		name:    "whitespace inside the preset",
		in:      "spotrunner/linux x64",
		wantErr: &Error{Label: "spotrunner/linux x64", Reason: `preset name "linux x64" contains whitespace`},
	},
	{
		name:    "whitespace before the options slash",
		in:      "spotrunner/linux-x64 /cpu=4",
		wantErr: &Error{Label: "spotrunner/linux-x64 /cpu=4", Reason: `preset name "linux-x64 " contains whitespace`},
	},
	{
		name:    "whitespace after the prefix",
		in:      "spotrunner/ linux-x64",
		wantErr: &Error{Label: "spotrunner/ linux-x64", Reason: `preset name " linux-x64" contains whitespace`},
	},
	{
		name:    "preset starting with a dash",
		in:      "spotrunner/-linux",
		wantErr: &Error{Label: "spotrunner/-linux", Reason: `preset name "-linux" must start with a letter or a digit`},
	},
	{
		name:    "dot in the preset",
		in:      "spotrunner/linux.x64",
		wantErr: &Error{Label: "spotrunner/linux.x64", Reason: `preset name "linux.x64" contains "."; use only letters, digits, "-" and "_"`},
	},
	{
		name:    "control character in the preset",
		in:      "spotrunner/linux\x00x64",
		wantErr: &Error{Label: "spotrunner/linux\x00x64", Reason: `preset name "linux\x00x64" contains "\x00"; use only letters, digits, "-" and "_"`},
	},

	// Options.
	{
		name:    "unknown option",
		in:      "spotrunner/linux-x64/gpu=1",
		wantErr: &Error{Label: "spotrunner/linux-x64/gpu=1", Reason: `unknown option "gpu"; known options: cpu, ram`},
	},
	{
		name:    "whitespace inside an option name",
		in:      "spotrunner/linux-x64/c pu=1",
		wantErr: &Error{Label: "spotrunner/linux-x64/c pu=1", Reason: `unknown option "c pu"; known options: cpu, ram`},
	},
	{
		name:    "duplicated option with the same value",
		in:      "spotrunner/linux-x64/cpu=4,cpu=4",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=4,cpu=4", Reason: "option cpu is given more than once"},
	},
	{
		name:    "duplicated option in another case",
		in:      "spotrunner/linux-x64/ram=4,cpu=2,RAM=8",
		wantErr: &Error{Label: "spotrunner/linux-x64/ram=4,cpu=2,RAM=8", Reason: "option ram is given more than once"},
	},
	{
		name:    "cpu=0",
		in:      "spotrunner/linux-x64/cpu=0",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=0", Reason: "cpu must be at least 1, got 0"},
	},
	{
		name:    "cpu=99999",
		in:      "spotrunner/linux-x64/cpu=99999",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=99999", Reason: "cpu must be at most 192 vCPUs, got 99999"},
	},
	{
		name:    "cpu=193",
		in:      "spotrunner/linux-x64/cpu=193",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=193", Reason: "cpu must be at most 192 vCPUs, got 193"},
	},
	{
		name:    "ram=1025",
		in:      "spotrunner/linux-x64/ram=1025",
		wantErr: &Error{Label: "spotrunner/linux-x64/ram=1025", Reason: "ram must be at most 1024 GiB, got 1025"},
	},
	{
		name: "cpu beyond int64",
		in:   "spotrunner/linux-x64/cpu=99999999999999999999999",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=99999999999999999999999",
			Reason: "cpu must be at most 192 vCPUs, got 99999999999999999999999"},
	},
	{
		name: "ram=1.5",
		in:   "spotrunner/linux-x64/ram=1.5",
		wantErr: &Error{Label: "spotrunner/linux-x64/ram=1.5", Reason: "ram must be a whole number of GiB from 1 to 1024, " +
			`written with digits only (no sign, no decimal point), got "1.5"`},
	},
	{
		name: "negative",
		in:   "spotrunner/linux-x64/cpu=-4",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=-4", Reason: "cpu must be a whole number of vCPUs from 1 to 192, " +
			`written with digits only (no sign, no decimal point), got "-4"`},
	},
	{
		name: "leading plus",
		in:   "spotrunner/linux-x64/cpu=+4",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=+4", Reason: "cpu must be a whole number of vCPUs from 1 to 192, " +
			`written with digits only (no sign, no decimal point), got "+4"`},
	},
	{
		name: "not a number",
		in:   "spotrunner/linux-x64/cpu=four",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=four", Reason: "cpu must be a whole number of vCPUs from 1 to 192, " +
			`written with digits only (no sign, no decimal point), got "four"`},
	},
	{
		name: "two equals signs",
		in:   "spotrunner/linux-x64/cpu=4=4",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=4=4", Reason: "cpu must be a whole number of vCPUs from 1 to 192, " +
			`written with digits only (no sign, no decimal point), got "4=4"`},
	},
	{
		name: "whitespace inside a value",
		in:   "spotrunner/linux-x64/cpu=1 6",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=1 6", Reason: "cpu must be a whole number of vCPUs from 1 to 192, " +
			`written with digits only (no sign, no decimal point), got "1 6"`},
	},
	{
		name:    "leading zero",
		in:      "spotrunner/linux-x64/cpu=04",
		wantErr: &Error{Label: "spotrunner/linux-x64/cpu=04", Reason: `cpu must be written without leading zeros, got "04"`},
	},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.in)
			var gotErr *Error
			if err != nil && !errors.As(err, &gotErr) {
				t.Fatalf("Parse(%q) error %v is a %T, want *Error", tc.in, err, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) spec (-want +got):\n%s", tc.in, diff)
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("Parse(%q) error (-want +got):\n%s", tc.in, diff)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) error %v does not match ErrInvalid", tc.in, err)
			}
		})
	}
}

// TestParseIsIdempotent parses the canonical form of every valid label of TestParse again: it must
// come back unchanged, and as the very same string (no allocation needed to say so).
func TestParseIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, tc := range parseCases {
		if tc.wantErr != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.want.Label)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.want.Label, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.want.Label, diff)
			}
		})
	}
}

// TestIsSpotRunner checks the prefix test on labels that are ours (valid or not) and labels that
// belong to someone else, including look-alikes that strings.EqualFold would have let through.
func TestIsSpotRunner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "preset", in: "spotrunner/linux-x64", want: true},
		{name: "with options", in: "spotrunner/linux-x64/cpu=4", want: true},
		{name: "mixed case", in: "SpotRunner/Linux-X64", want: true},
		{name: "surrounding whitespace", in: " \tspotrunner/linux-x64\n", want: true},
		{name: "prefix alone is ours and malformed", in: "spotrunner/", want: true},
		{name: "malformed", in: "spotrunner//cpu=4", want: true},
		{name: "non-ascii after the prefix", in: "spotrunner/linux‐x64", want: true},
		{name: "self-hosted", in: "self-hosted", want: false},
		{name: "ubuntu-latest", in: "ubuntu-latest", want: false},
		{name: "longer first segment", in: "spotrunnerx/foo", want: false},
		{name: "no slash", in: "spotrunner", want: false},
		{name: "space before the slash", in: "spotrunner /linux-x64", want: false},
		{name: "empty", in: "", want: false},
		{name: "kelvin-style look-alike (long s)", in: "ſpotrunner/linux-x64", want: false},
		{name: "cyrillic s", in: "ѕpotrunner/linux-x64", want: false},
		{name: "no-break space before", in: "\u00a0spotrunner/linux-x64", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := IsSpotRunner(tc.in); got != tc.want {
				t.Errorf("IsSpotRunner(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestFind runs jobs' whole label lists: jobs without a spotrunner label are not ours, jobs with one
// (however spelled, however often) get its Spec, jobs with a malformed one or with several distinct
// ones are ours and rejected with a reason.
func TestFind(t *testing.T) {
	t.Parallel()
	type result struct {
		Spec Spec
		OK   bool
		Err  *Error
	}
	tests := []struct {
		name string
		in   []string
		want result
	}{
		{name: "nil", in: nil, want: result{}},
		{name: "hosted runner", in: []string{"ubuntu-latest"}, want: result{}},
		{name: "other self-hosted runner", in: []string{"self-hosted", "linux", "x64"}, want: result{}},
		{name: "look-alike prefix", in: []string{"self-hosted", "spotrunnerx/foo"}, want: result{}},
		{
			name: "ours",
			in:   []string{"self-hosted", "spotrunner/linux-x64"},
			want: result{Spec: Spec{Label: "spotrunner/linux-x64", Preset: "linux-x64"}, OK: true},
		},
		{
			name: "ours with options, not first",
			in:   []string{"self-hosted", "linux", "SpotRunner/Linux-X64/ram=16, cpu=4"},
			want: result{Spec: Spec{Label: "spotrunner/linux-x64/cpu=4,ram=16", Preset: "linux-x64", CPU: 4, RAMGiB: 16}, OK: true},
		},
		{
			name: "same label twice after normalisation",
			in:   []string{"spotrunner/linux-x64/cpu=4,ram=16", "self-hosted", " SPOTRUNNER/linux-x64/ram=16,cpu=4 "},
			want: result{Spec: Spec{Label: "spotrunner/linux-x64/cpu=4,ram=16", Preset: "linux-x64", CPU: 4, RAMGiB: 16}, OK: true},
		},
		{
			name: "malformed",
			in:   []string{"self-hosted", "spotrunner/linux-x64/cpu=0"},
			want: result{OK: true, Err: &Error{Label: "spotrunner/linux-x64/cpu=0", Reason: "cpu must be at least 1, got 0"}},
		},
		{
			name: "prefix alone",
			in:   []string{"self-hosted", "spotrunner/"},
			want: result{OK: true, Err: &Error{Label: "spotrunner/",
				Reason: `no preset name after "spotrunner/"; write spotrunner/<preset>, e.g. spotrunner/linux-x64`}},
		},
		{
			name: "same malformed label twice",
			in:   []string{"spotrunner/linux-x64/cpu=0", "SpotRunner/Linux-X64/CPU=0"},
			want: result{OK: true, Err: &Error{Label: "spotrunner/linux-x64/cpu=0", Reason: "cpu must be at least 1, got 0"}},
		},
		{
			name: "two distinct labels",
			in:   []string{"self-hosted", "spotrunner/linux-x64", "spotrunner/linux-arm64"},
			want: result{OK: true, Err: &Error{Label: "spotrunner/linux-x64",
				Reason: `job has more than one spotrunner label ("spotrunner/linux-x64" and "spotrunner/linux-arm64"); a job must ask for exactly one`}},
		},
		{
			name: "same preset, different options",
			in:   []string{"spotrunner/linux-x64/cpu=4", "spotrunner/linux-x64/cpu=8"},
			want: result{OK: true, Err: &Error{Label: "spotrunner/linux-x64/cpu=4",
				Reason: `job has more than one spotrunner label ("spotrunner/linux-x64/cpu=4" and "spotrunner/linux-x64/cpu=8"); a job must ask for exactly one`}},
		},
		{
			name: "several labels reported before a malformed one",
			in:   []string{"spotrunner/linux-x64", "spotrunner/linux‐arm64"},
			want: result{OK: true, Err: &Error{Label: "spotrunner/linux-x64",
				Reason: `job has more than one spotrunner label ("spotrunner/linux-x64" and "spotrunner/linux\u2010arm64"); a job must ask for exactly one`}},
		},
		{
			name: "huge second label",
			in:   []string{"spotrunner/linux-x64", huge},
			want: result{OK: true, Err: &Error{Label: "spotrunner/linux-x64",
				Reason: `job has more than one spotrunner label ("spotrunner/linux-x64" and "` + huge[:MaxLength] + `..."); a job must ask for exactly one`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec, ok, err := Find(tc.in)
			got := result{Spec: spec, OK: ok}
			if err != nil {
				if !errors.As(err, &got.Err) {
					t.Fatalf("Find(%q) error %v is a %T, want *Error", tc.in, err, err)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("Find(%q) error %v does not match ErrInvalid", tc.in, err)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Find(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// TestSet normalises jobs' label sets: two jobs that GitHub and Spot Runner treat alike must get
// the same set, so that runners and jobs can be counted per set.
func TestSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "nil", in: nil, want: []string{}},
		{name: "only empty labels", in: []string{"", "  "}, want: []string{}},
		{
			name: "sorted",
			in:   []string{"spotrunner/linux-x64", "self-hosted"},
			want: []string{"self-hosted", "spotrunner/linux-x64"},
		},
		{
			name: "trimmed, lowercased, spelling kept (GitHub matches strings)",
			in:   []string{" Self-Hosted", "SpotRunner/Linux-X64/ram=16, cpu=4\t", "GPU"},
			want: []string{"gpu", "self-hosted", "spotrunner/linux-x64/ram=16, cpu=4"},
		},
		{
			name: "deduplicated by case, option order kept apart",
			in:   []string{"self-hosted", "SELF-HOSTED", "spotrunner/linux-x64/cpu=4,ram=16", "spotrunner/linux-x64/ram=16,cpu=4"},
			want: []string{"self-hosted", "spotrunner/linux-x64/cpu=4,ram=16", "spotrunner/linux-x64/ram=16,cpu=4"},
		},
		{
			name: "malformed spotrunner label kept as given, lowercased",
			in:   []string{"self-hosted", "SpotRunner/Linux-X64/cpu=0"},
			want: []string{"self-hosted", "spotrunner/linux-x64/cpu=0"},
		},
		{
			name: "non-ascii left alone",
			in:   []string{"Ünï", "ſelf-hosted"},
			want: []string{"Ünï", "ſelf-hosted"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Set(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Set(%q) (-want +got):\n%s", tc.in, diff)
			}
			if again := Set(got); !slices.Equal(again, got) {
				t.Errorf("Set(Set(%q)) = %q, want %q", tc.in, again, got)
			}
		})
	}
}

// TestSetKeepsInput checks that Set works on a copy: the caller's slice is the webhook's payload.
func TestSetKeepsInput(t *testing.T) {
	t.Parallel()
	in := []string{"SpotRunner/Linux-X64", " self-hosted"}
	_ = Set(in)
	if diff := cmp.Diff([]string{"SpotRunner/Linux-X64", " self-hosted"}, in); diff != "" {
		t.Errorf("Set changed its input (-want +got):\n%s", diff)
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse("spotrunner/linux‐x64/cpu=0")
	want := `invalid spotrunner label "spotrunner/linux\u2010x64/cpu=0": label contains the non-ASCII character ` +
		`U+2010 '\u2010' at position 17; labels must be plain ASCII (look for a typographic hyphen or a letter from another alphabet)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

// TestOptionsTable checks the invariants the parser relies on: names sorted (the canonical order),
// unique, at most 64 (the duplicate bitmask), sane bounds, and get reading what set wrote.
func TestOptionsTable(t *testing.T) {
	t.Parallel()
	if len(options) > 64 {
		t.Fatalf("%d options; the duplicate bitmask holds 64", len(options))
	}
	for i, o := range options {
		if i > 0 && options[i-1].name >= o.name {
			t.Errorf("options[%d] %q is not after %q: the table must be sorted by name", i, o.name, options[i-1].name)
		}
		if o.name == "" || strings.ContainsAny(o.name, "=,/ ") || o.name != strings.ToLower(o.name) {
			t.Errorf("options[%d] name %q cannot be written in a label", i, o.name)
		}
		if o.min < 1 || o.max < o.min || o.unit == "" {
			t.Errorf("option %s: bounds %d..%d, unit %q: want 1 <= min <= max and a unit", o.name, o.min, o.max, o.unit)
		}
		if got := o.get(o.set(Spec{}, o.max)); got != o.max {
			t.Errorf("option %s: get after set(%d) = %d", o.name, o.max, got)
		}
	}
}

// TestParseAllocations pins the cost of the hot path: a canonical, lowercase label parses without
// allocating, and a huge one is refused after only building its error.
func TestParseAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; allocation counts hold without it (go test ./...)")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse("spotrunner/linux-x64/cpu=4,ram=16") }); n != 0 {
		t.Errorf("Parse of a canonical label: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(10, func() { _, _ = Parse(huge) }); n > 4 {
		t.Errorf("Parse of a 1 MiB label: %v allocations, want at most 4", n)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, label string }{
		{name: "canonical", label: "spotrunner/linux-x64/cpu=4,ram=16"},
		{name: "to normalise", label: "SpotRunner/Linux-X64/ram=16, cpu=4"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.label); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
