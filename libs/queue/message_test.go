package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the messages encoded")

var testNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// queued is the message ingest builds for a queued delivery (services/ingest TestMessage).
func queued() Message {
	return Message{
		Version: Version, Action: ActionQueued, DeliveryID: "guid-1", Host: "ghes.example.com", InstallationID: 42,
		Owner: "acme", OwnerType: "Organization", Repo: "app", JobID: 901, JobName: "build", RunID: 77, RunAttempt: 1,
		Labels: []string{"self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"}, ReceivedAt: testNow,
	}
}

// completed is the same job's completed event, with the runner and conclusion GitHub reports.
func completed() Message {
	m := queued()
	m.Action, m.DeliveryID, m.RunnerName, m.RunnerID, m.Conclusion = ActionCompleted, "guid-3", "spotrunner-i-0abc", 17, "success"
	return m
}

// change returns queued() changed by f.
func change(f func(*Message)) Message {
	m := queued()
	f(&m)
	return m
}

func encode(t *testing.T, m Message) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecode: fixtures are message bodies, most of them the queued message with one field changed.
// A valid body must decode to the message it encodes (all three actions, both owner types, the
// largest job id, unknown fields from a newer producer); each validation rule, an unknown version
// and a body that is not a message must fail with an error matching ErrMalformed (never worth a
// retry) that names the rule, and the zero Message.
func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    []byte
		want    Message
		wantErr string // substring of the error; "" for success
	}{
		{name: "queued", body: encode(t, queued()), want: queued()},
		{name: "completed with runner", body: encode(t, completed()), want: completed()},
		{
			name: "in_progress",
			body: encode(t, change(func(m *Message) { m.Action = ActionInProgress })),
			want: change(func(m *Message) { m.Action = ActionInProgress }),
		},
		{
			name: "user-owned repository",
			body: encode(t, change(func(m *Message) { m.OwnerType = "User" })),
			want: change(func(m *Message) { m.OwnerType = "User" }),
		},
		{
			name: "relaunch attempt",
			body: encode(t, change(func(m *Message) { m.Attempt = 2 })),
			want: change(func(m *Message) { m.Attempt = 2 }),
		},
		{
			name: "largest job id survives JSON",
			body: encode(t, change(func(m *Message) { m.JobID = 1<<63 - 1 })),
			want: change(func(m *Message) { m.JobID = 1<<63 - 1 }),
		},
		{
			name: "unknown field",
			body: bytes.Replace(encode(t, queued()), []byte(`{`), []byte(`{"newField":true,`), 1),
			want: queued(),
		},

		// One case per rule.
		{name: "version missing", body: encode(t, change(func(m *Message) { m.Version = 0 })), wantErr: "version 0, want 1"},
		{name: "unknown version", body: encode(t, change(func(m *Message) { m.Version = 2 })), wantErr: "version 2, want 1"},
		{name: "action missing", body: encode(t, change(func(m *Message) { m.Action = "" })), wantErr: `action ""`},
		{name: "unknown action", body: encode(t, change(func(m *Message) { m.Action = "waiting" })), wantErr: `action "waiting"`},
		{name: "action is case-sensitive", body: encode(t, change(func(m *Message) { m.Action = "Queued" })), wantErr: `action "Queued"`},
		{name: "host missing", body: encode(t, change(func(m *Message) { m.Host = "" })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "job id missing", body: encode(t, change(func(m *Message) { m.JobID = 0 })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "job id negative", body: encode(t, change(func(m *Message) { m.JobID = -901 })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "installation id missing", body: encode(t, change(func(m *Message) { m.InstallationID = 0 })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "installation id negative", body: encode(t, change(func(m *Message) { m.InstallationID = -42 })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "owner missing", body: encode(t, change(func(m *Message) { m.Owner = "" })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "repo missing", body: encode(t, change(func(m *Message) { m.Repo = "" })), wantErr: "host, job id, installation id, owner and repo are required"},
		{name: "owner type missing", body: encode(t, change(func(m *Message) { m.OwnerType = "" })), wantErr: `owner type ""`},
		{name: "unknown owner type", body: encode(t, change(func(m *Message) { m.OwnerType = "Enterprise" })), wantErr: `owner type "Enterprise"`},
		{name: "owner type is case-sensitive", body: encode(t, change(func(m *Message) { m.OwnerType = "organization" })), wantErr: `owner type "organization"`},
		{name: "labels missing", body: encode(t, change(func(m *Message) { m.Labels = nil })), wantErr: "no labels"},
		{name: "labels empty", body: encode(t, change(func(m *Message) { m.Labels = []string{} })), wantErr: "no labels"},

		// Bodies that are not a message.
		{name: "empty body", body: []byte(``), wantErr: "unexpected end of JSON input"},
		{name: "not JSON", body: []byte(`queued 901`), wantErr: "invalid character"},
		{name: "truncated", body: encode(t, queued())[:40], wantErr: "unexpected end of JSON input"},
		{name: "JSON array", body: []byte(`[1]`), wantErr: "cannot unmarshal array"},
		{name: "wrong type", body: []byte(`{"version":"1"}`), wantErr: "cannot unmarshal string"},
		{name: "JSON null", body: []byte(`null`), wantErr: "version 0, want 1"},
		{name: "empty object", body: []byte(`{}`), wantErr: "version 0, want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(tt.body)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Decode error = %v, want ErrMalformed containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWireFormat: fixtures are testdata/<case>.golden.json, the bodies of a queued and a completed
// message. Messages wait on the queue across deploys, so the encoding must equal the golden file
// byte for byte (a renamed field would strand them) and the golden file must decode back to the
// message; -update rewrites the files.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  Message
	}{
		{name: "queued", msg: queued()},
		{name: "completed", msg: completed()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := append(encode(t, tt.msg), '\n')
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("body differs from %s (-want +got):\n%s", path, diff)
			}
			back, err := Decode(want)
			if err != nil {
				t.Fatalf("Decode(%s): %v", path, err)
			}
			if diff := cmp.Diff(tt.msg, back); diff != "" {
				t.Errorf("Decode(%s) (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestGroupID: fixtures are messages of several jobs and actions. The group is the job id in
// decimal, the same for every event of one job whatever its action or attempt.
func TestGroupID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{name: "queued", msg: queued(), want: "901"},
		{name: "completed of the same job", msg: completed(), want: "901"},
		{name: "relaunch of the same job", msg: change(func(m *Message) { m.Attempt = 3 }), want: "901"},
		{name: "other host, same job id", msg: change(func(m *Message) { m.Host = "github.com" }), want: "901"},
		{name: "large job id", msg: change(func(m *Message) { m.JobID = 31962284539 }), want: "31962284539"},
		{name: "largest job id", msg: change(func(m *Message) { m.JobID = 1<<63 - 1 }), want: "9223372036854775807"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.msg.GroupID()); diff != "" {
				t.Errorf("GroupID (-want +got):\n%s", diff)
			}
		})
	}
}

// sqsDedupChars are the characters SQS accepts in MessageDeduplicationId: alphanumerics and
// punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~).
const sqsDedupChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" +
	"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// hostOf returns a plausible host name of exactly n characters.
func hostOf(n int) string {
	const suffix = ".example.com"
	return strings.Repeat("g", n-len(suffix)) + suffix
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestDedupID: fixtures are messages differing in host, job, action and relaunch attempt, with hosts
// long enough to put the id at and over SQS's 128 characters. The id must be host/job/action (plus
// /attempt for a relaunch), kept verbatim up to 128 characters and replaced by its SHA-256 in hex
// beyond; every id must be at most 128 characters of those SQS allows.
func TestDedupID(t *testing.T) {
	t.Parallel()
	at128 := hostOf(128 - len("/901/queued"))
	at129 := hostOf(129 - len("/901/queued"))
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{name: "queued", msg: queued(), want: "ghes.example.com/901/queued"},
		{name: "in_progress", msg: change(func(m *Message) { m.Action = ActionInProgress }), want: "ghes.example.com/901/in_progress"},
		{name: "completed", msg: completed(), want: "ghes.example.com/901/completed"},
		{name: "github.com", msg: change(func(m *Message) { m.Host = "github.com" }), want: "github.com/901/queued"},
		{name: "host with port", msg: change(func(m *Message) { m.Host = "ghes.example.com:8443" }), want: "ghes.example.com:8443/901/queued"},
		{name: "other job", msg: change(func(m *Message) { m.JobID = 31962284539 }), want: "ghes.example.com/31962284539/queued"},
		{name: "relaunch attempt", msg: change(func(m *Message) { m.Attempt = 1 }), want: "ghes.example.com/901/queued/1"},
		{name: "second relaunch attempt", msg: change(func(m *Message) { m.Attempt = 2 }), want: "ghes.example.com/901/queued/2"},
		{name: "exactly 128 characters", msg: change(func(m *Message) { m.Host = at128 }), want: at128 + "/901/queued"},
		{name: "129 characters are hashed", msg: change(func(m *Message) { m.Host = at129 }), want: sha256Hex(at129 + "/901/queued")},
		{
			name: "long host, relaunch attempt hashed separately",
			msg:  change(func(m *Message) { m.Host, m.Attempt = at129, 1 }),
			want: sha256Hex(at129 + "/901/queued/1"),
		},
		{
			name: "attempt pushes over 128",
			msg:  change(func(m *Message) { m.Host, m.Attempt = at128, 1 }),
			want: sha256Hex(at128 + "/901/queued/1"),
		},
		{
			name: "longest host",
			msg:  change(func(m *Message) { m.Host, m.Action = hostOf(253), ActionInProgress }),
			want: sha256Hex(hostOf(253) + "/901/in_progress"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.msg.DedupID()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DedupID (-want +got):\n%s", diff)
			}
			if len(got) == 0 || len(got) > 128 {
				t.Errorf("DedupID %q has %d characters, want 1..128", got, len(got))
			}
			if i := strings.IndexFunc(got, func(r rune) bool { return !strings.ContainsRune(sqsDedupChars, r) }); i >= 0 {
				t.Errorf("DedupID %q has %q at %d, which SQS does not allow", got, got[i], i)
			}
		})
	}
}

// TestDedupIDDistinct: fixtures are events that SQS must not merge: the actions of one job, its
// relaunch attempts, the same job id on two hosts, both with short hosts and with hosts long enough
// to be hashed. Their ids must all differ.
func TestDedupIDDistinct(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		host string
	}{
		{name: "short host", host: "ghes.example.com"},
		{name: "hashed host", host: hostOf(200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := map[string]string{}
			for _, host := range []string{tt.host, "x" + tt.host} {
				for _, action := range []string{ActionQueued, ActionInProgress, ActionCompleted} {
					for attempt := range 3 {
						m := change(func(m *Message) { m.Host, m.Action, m.Attempt = host, action, attempt })
						what := fmt.Sprintf("%s %s attempt %d", m.Host, action, attempt)
						if prev, dup := seen[m.DedupID()]; dup {
							t.Errorf("%s and %s share dedup id %q", prev, what, m.DedupID())
						}
						seen[m.DedupID()] = what
					}
				}
			}
		})
	}
}
