package logging

import (
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// placeholder replaces every secret in a log line.
const placeholder = "[REDACTED]"

// maxRedacted bounds the registry: installation tokens and JIT configs are registered as they are
// minted, so a long-lived container would otherwise grow it forever. The shape patterns below
// still catch the oldest ones.
const maxRedacted = 512

// minRedacted is the shortest value worth registering; shorter ones would redact ordinary words.
const minRedacted = 8

// shapes are secrets recognised by their form, registered or not, as they appear inside a JSON
// string (newlines escaped): PEM private keys, GitHub tokens, and JWTs or base64-encoded JSON
// objects (`{"` encodes to "ey" and one of I, J, K, L: JIT configs and JWT headers both start so).
// No word boundaries: a token glued to other text must still go.
var shapes = regexp.MustCompile(`-----BEGIN[A-Z ]*PRIVATE KEY-----.*?-----END[A-Z ]*PRIVATE KEY-----` +
	`|-----BEGIN[A-Z ]*PRIVATE KEY-----[^"]*` +
	`|gh[pousr]_[A-Za-z0-9]{20,}` +
	`|github_pat_[A-Za-z0-9_]{20,}` +
	`|ey[IJKL][A-Za-z0-9_\-+/=.]{16,}`)

// registry holds the values registered with Redact, process-wide: a secret is a fact about the
// process, whichever logger happens to print it.
var registry struct {
	mu       sync.Mutex
	values   []string
	replacer atomic.Pointer[strings.Replacer]
}

// Redact registers secret values that must never appear in a log line, raw or JSON-escaped.
func Redact(values ...string) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) < minRedacted {
			continue
		}
		registry.values = append(registry.values, v)
		changed = true
	}
	if !changed {
		return
	}
	if n := len(registry.values); n > maxRedacted {
		registry.values = registry.values[n-maxRedacted:]
	}
	var pairs []string
	for _, v := range registry.values {
		pairs = append(pairs, v, placeholder)
		if esc := jsonEscaped(v); esc != v {
			pairs = append(pairs, esc, placeholder)
		}
	}
	registry.replacer.Store(strings.NewReplacer(pairs...))
}

// jsonEscaped is v as it appears between the quotes of a JSON string.
func jsonEscaped(v string) string {
	b, _ := json.Marshal(v)
	return string(b[1 : len(b)-1])
}

// redactor is the writer under every logger: zerolog hands it one whole JSON line per Write.
type redactor struct{ w io.Writer }

func (r *redactor) Write(p []byte) (int, error) {
	line := string(p)
	if rep := registry.replacer.Load(); rep != nil {
		line = rep.Replace(line)
	}
	line = shapes.ReplaceAllString(line, placeholder)
	if _, err := io.WriteString(r.w, line); err != nil {
		return 0, err
	}
	// Report the caller's length: a shortened line is not a short write.
	return len(p), nil
}
