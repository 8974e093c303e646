package lambdasim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLookRIE: fixtures are module roots with no emulator in .cache/bin, and with another Go
// program there (the echo Lambda). LookRIE refuses both, saying how to install RIEVersion.
func TestLookRIE(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	if _, err := LookRIE(empty); err == nil || !strings.Contains(err.Error(), "scripts/deps.sh") || !strings.Contains(err.Error(), RIEVersion) {
		t.Errorf("no emulator: err = %v, want one saying how to install %s", err, RIEVersion)
	}
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(RIEPath(other)), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := buildEcho()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(src, RIEPath(other)); err != nil {
		t.Fatal(err)
	}
	if _, err := LookRIE(other); err == nil || !strings.Contains(err.Error(), "want "+RIEVersion) {
		t.Errorf("another program: err = %v, want one naming the version wanted", err)
	}
}
