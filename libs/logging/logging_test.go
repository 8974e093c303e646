package logging

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

// secretsOf returns one value of every kind of secret the services handle, freshly made.
// Registered ones are passed to Redact, as the loading packages do; the others must be caught by
// their shape alone.
func secretsOf(t *testing.T) map[string]string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	jit := base64.StdEncoding.EncodeToString([]byte(`{".runner":"eyJhZ2VudElkIjoxfQ==",".credentials":"c2VjcmV0","shared":"` + rand.Text() + `"}`))
	webhookSecret := "whs-" + rand.Text()          // random, no recognisable shape: registered
	registeredQuote := `pa"ss\word-` + rand.Text() // JSON escaping must not let it through
	Redact(webhookSecret, registeredQuote)
	return map[string]string{
		"private key":            pemKey,
		"installation token":     "ghs_" + strings.Repeat("A1b2", 9),
		"personal token":         "ghp_" + strings.Repeat("Z9y8", 9),
		"fine-grained token":     "github_pat_11ABCDEFG0" + strings.Repeat("x", 40),
		"jit config":             jit,
		"app jwt":                "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlLXBhcnQ",
		"webhook secret":         webhookSecret,
		"registered with quotes": registeredQuote,
	}
}

type carrier struct {
	Name   string
	Secret string
}

// TestRedaction is the redaction guarantee. Fixtures: one secret of each kind (secretsOf). Each is
// logged every way a handler could (message, printf, field, error, struct, map, bytes, nested
// error) and no line may contain the secret, raw or JSON-escaped; every line must still be valid
// JSON and keep the non-secret fields.
func TestRedaction(t *testing.T) {
	t.Parallel()
	ways := map[string]func(l zerolog.Logger, s string){
		"message":      func(l zerolog.Logger, s string) { l.Info().Msg("got " + s) },
		"printf":       func(l zerolog.Logger, s string) { l.Info().Msgf("value=%s", s) },
		"field":        func(l zerolog.Logger, s string) { l.Info().Str("value", s).Msg("field") },
		"error":        func(l zerolog.Logger, s string) { l.Error().Err(errors.New("call failed: " + s)).Msg("err") },
		"wrapped":      func(l zerolog.Logger, s string) { l.Error().Err(fmt.Errorf("outer: %w", errors.New(s))).Msg("w") },
		"struct":       func(l zerolog.Logger, s string) { l.Info().Interface("c", carrier{"n", s}).Msg("struct") },
		"map":          func(l zerolog.Logger, s string) { l.Info().Fields(map[string]any{"k": s}).Msg("map") },
		"bytes":        func(l zerolog.Logger, s string) { l.Info().Bytes("b", []byte(s)).Msg("bytes") },
		"context":      func(l zerolog.Logger, s string) { c := l.With().Str("ctx", s).Logger(); c.Warn().Msg("ctx") },
		"strs":         func(l zerolog.Logger, s string) { l.Info().Strs("list", []string{"a", s}).Msg("strs") },
		"stringer":     func(l zerolog.Logger, s string) { l.Info().Stringer("s", stringer(s)).Msg("stringer") },
		"debug level":  func(l zerolog.Logger, s string) { l.Debug().Str("v", s).Msg("debug") },
		"inside words": func(l zerolog.Logger, s string) { l.Info().Msg("prefix" + s + "suffix") },
	}
	for kind, secret := range secretsOf(t) {
		for way, logIt := range ways {
			t.Run(kind+"/"+way, func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				l, err := New(&buf, "debug")
				if err != nil {
					t.Fatal(err)
				}
				logIt(l.With().Str("jobId", "42").Logger(), secret)
				out := buf.String()
				for _, form := range []string{secret, jsonEscaped(secret)} {
					if strings.Contains(out, form) {
						t.Fatalf("secret %s leaked through %s: %s", kind, way, out)
					}
				}
				var line map[string]any
				if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
					t.Fatalf("line is not JSON after redaction: %v: %s", err, out)
				}
				if line["jobId"] != "42" || !strings.Contains(out, placeholder) {
					t.Errorf("line lost its fields or placeholder: %s", out)
				}
			})
		}
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// TestRedactIgnoresShortValues: registering a short value must not blank out ordinary words.
func TestRedactIgnoresShortValues(t *testing.T) {
	t.Parallel()
	Redact("info")
	var buf bytes.Buffer
	l, _ := New(&buf, "info")
	l.Info().Msg("information")
	if !strings.Contains(buf.String(), `"information"`) {
		t.Errorf("short registered value redacted ordinary text: %s", buf.String())
	}
}

// TestLevels: LOG_LEVEL values map to zerolog levels; unknown ones are an error at start.
func TestLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level   string
		want    zerolog.Level
		wantErr bool
	}{
		{"", zerolog.InfoLevel, false},
		{"debug", zerolog.DebugLevel, false},
		{"WARN", zerolog.WarnLevel, false},
		{"error", zerolog.ErrorLevel, false},
		{"loud", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			t.Parallel()
			l, err := New(&bytes.Buffer{}, tt.level)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) error = %v, wantErr %v", tt.level, err, tt.wantErr)
			}
			if err == nil && l.GetLevel() != tt.want {
				t.Errorf("New(%q) level = %v, want %v", tt.level, l.GetLevel(), tt.want)
			}
		})
	}
}

// TestContextIDs: the ids added along the way (request, delivery, job, instance) appear on the
// line logged at the boundary.
func TestContextIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, _ := New(&buf, "info")
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	ctx = Attach(ctx, l)
	ctx = WithDelivery(ctx, "d-1")
	ctx = WithJob(ctx, "ghes.example.com", 77)
	ctx = WithInstance(ctx, "i-0abc")
	From(ctx).Info().Msg("done")

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	delete(got, "time")
	want := map[string]any{
		"level": "info", "message": "done", "requestId": "req-1", "deliveryId": "d-1",
		"host": "ghes.example.com", "jobId": "77", "instanceId": "i-0abc",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line mismatch (-want +got):\n%s", diff)
	}
}
