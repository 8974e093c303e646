package presets

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"
)

// fakeSSM serves parameters from a map, answers a missing one with SSM's ParameterNotFound, and
// records the name of every GetParameter call. err, when set, is the answer to every call.
type fakeSSM struct {
	mu     sync.Mutex
	params map[string]string
	err    error
	calls  []string
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := aws.ToString(in.Name)
	f.calls = append(f.calls, name)
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.params[name]
	if !ok {
		return nil, &types.ParameterNotFound{Message: aws.String("Parameter " + name + " not found.")}
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Name: in.Name, Value: aws.String(v), Type: types.ParameterTypeString}}, nil
}

func (f *fakeSSM) set(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.params[name] = value
}

func (f *fakeSSM) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

const (
	x64Doc   = `{"name":"linux-x64","launchTemplateId":"lt-0123456789abcdef0"}`
	arm64Doc = `{"name":"linux-arm64","architecture":"arm64","launchTemplateId":"lt-0123456789abcdef0"}`
)

var errThrottled = errors.New("ThrottlingException: Rate exceeded")

// TestStoreGet: fixtures are a fake SSM holding preset documents under /spotrunner/test-stack/presets/ and a
// store configured with preset names. A configured, valid preset must come back parsed after one
// GetParameter of its path; an unconfigured name must be ErrUnknown without any SSM call; a missing
// parameter, an invalid document and a document naming another preset must be ErrBroken (the
// operator's to fix); any other SSM error must come back wrapped, neither ErrUnknown nor ErrBroken.
func TestStoreGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		names     []string          // configured presets
		params    map[string]string // SSM parameters
		ssmErr    error
		get       string
		want      Preset
		wantErr   error
		wantCalls []string
	}{
		{
			name:      "configured preset",
			names:     []string{"linux-x64", "linux-arm64"},
			params:    map[string]string{"/spotrunner/test-stack/presets/linux-x64": x64Doc, "/spotrunner/test-stack/presets/linux-arm64": arm64Doc},
			get:       "linux-arm64",
			want:      defaultArm64,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-arm64"},
		},
		{
			name:      "configured names are trimmed and lowercased",
			names:     []string{" Linux-X64 "},
			params:    map[string]string{"/spotrunner/test-stack/presets/linux-x64": x64Doc},
			get:       "linux-x64",
			want:      defaultX64,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-x64"},
		},
		{
			name:    "unknown preset",
			names:   []string{"linux-x64"},
			params:  map[string]string{"/spotrunner/test-stack/presets/linux-x64": x64Doc, "/spotrunner/test-stack/presets/gpu": x64Doc},
			get:     "gpu",
			wantErr: ErrUnknown,
		},
		{
			name:      "parameter missing",
			names:     []string{"linux-x64", "linux-arm64"},
			params:    map[string]string{"/spotrunner/test-stack/presets/linux-x64": x64Doc},
			get:       "linux-arm64",
			wantErr:   ErrBroken,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-arm64"},
		},
		{
			name:      "document not JSON",
			names:     []string{"linux-x64"},
			params:    map[string]string{"/spotrunner/test-stack/presets/linux-x64": "linux-x64"},
			get:       "linux-x64",
			wantErr:   ErrBroken,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-x64"},
		},
		{
			name:      "document invalid",
			names:     []string{"linux-x64"},
			params:    map[string]string{"/spotrunner/test-stack/presets/linux-x64": `{"name":"linux-x64"}`},
			get:       "linux-x64",
			wantErr:   ErrBroken,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-x64"},
		},
		{
			name:      "document names another preset",
			names:     []string{"linux-x64", "linux-arm64"},
			params:    map[string]string{"/spotrunner/test-stack/presets/linux-x64": arm64Doc},
			get:       "linux-x64",
			wantErr:   ErrBroken,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-x64"},
		},
		{
			name:      "other SSM error",
			names:     []string{"linux-x64"},
			ssmErr:    errThrottled,
			get:       "linux-x64",
			wantErr:   errThrottled,
			wantCalls: []string{"/spotrunner/test-stack/presets/linux-x64"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSSM{params: tt.params, err: tt.ssmErr}
			got, err := New(f, ParameterPrefix("test-stack"), tt.names, time.Minute).Get(context.Background(), tt.get)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Get(%q) error = %v, want %v", tt.get, err, tt.wantErr)
			}
			for _, other := range []error{ErrUnknown, ErrBroken} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Errorf("Get(%q) error = %v, also matches %v", tt.get, err, other)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Get(%q) (-want +got):\n%s", tt.get, diff)
			}
			if diff := cmp.Diff(tt.wantCalls, f.calls); diff != "" {
				t.Errorf("GetParameter calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStoreCache: fixtures are a fake SSM holding linux-x64, a store with a one-minute TTL and a
// fake clock; between steps the document in SSM may be edited and the clock moved. Within the TTL
// the cached preset must be served without a call (even after an edit); at the TTL the document is
// read again and the edit takes effect; a broken document is not cached, so the fix is read on the
// next Get.
func TestStoreCache(t *testing.T) {
	t.Parallel()
	const path = "/spotrunner/test-stack/presets/linux-x64"
	edited := `{"name":"linux-x64","instanceTypes":["c5.large"],"launchTemplateId":"lt-0123456789abcdef0"}`
	editedPreset := with(defaultX64, func(p *Preset) { p.InstanceTypes = []string{"c5.large"} })

	f := &fakeSSM{params: map[string]string{path: x64Doc}}
	s := New(f, ParameterPrefix("test-stack"), []string{"linux-x64"}, time.Minute)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var now time.Time
	s.now = func() time.Time { return now }

	steps := []struct {
		name      string
		at        time.Duration // clock, from t0
		doc       string        // written to SSM before the step, when set
		want      Preset
		wantErr   error
		wantCalls int // total so far
	}{
		{name: "first read", at: 0, want: defaultX64, wantCalls: 1},
		{name: "cached", at: 30 * time.Second, want: defaultX64, wantCalls: 1},
		{name: "edit not seen within the TTL", at: time.Minute - time.Nanosecond, doc: edited, want: defaultX64, wantCalls: 1},
		{name: "edit seen at the TTL", at: time.Minute, want: editedPreset, wantCalls: 2},
		{name: "cached again", at: time.Minute + 59*time.Second, want: editedPreset, wantCalls: 2},
		{name: "broken after the TTL", at: 3 * time.Minute, doc: `{"name":"linux-x64"}`, wantErr: ErrBroken, wantCalls: 3},
		{name: "broken is not cached", at: 3 * time.Minute, wantErr: ErrBroken, wantCalls: 4},
		{name: "fix read at once", at: 3 * time.Minute, doc: x64Doc, want: defaultX64, wantCalls: 5},
		{name: "fix cached", at: 3*time.Minute + time.Second, want: defaultX64, wantCalls: 5},
	}
	for _, st := range steps {
		if st.doc != "" {
			f.set(path, st.doc)
		}
		now = t0.Add(st.at)
		got, err := s.Get(context.Background(), "linux-x64")
		if !errors.Is(err, st.wantErr) {
			t.Errorf("%s: Get error = %v, want %v", st.name, err, st.wantErr)
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: Get (-want +got):\n%s", st.name, diff)
		}
		if got := f.callCount(); got != st.wantCalls {
			t.Errorf("%s: %d GetParameter calls in all, want %d", st.name, got, st.wantCalls)
		}
	}
}

// TestStoreConcurrent: fixtures are a fake SSM holding both default presets and one store shared by
// many goroutines (run with -race). Every Get must return its preset; the cache must hold, so no
// more than one call per preset and goroutine can happen, and at least one per preset does.
func TestStoreConcurrent(t *testing.T) {
	t.Parallel()
	f := &fakeSSM{params: map[string]string{
		"/spotrunner/test-stack/presets/linux-x64":   x64Doc,
		"/spotrunner/test-stack/presets/linux-arm64": arm64Doc,
	}}
	s := New(f, ParameterPrefix("test-stack"), []string{"linux-x64", "linux-arm64"}, time.Hour)
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for range workers {
		for _, want := range []Preset{defaultX64, defaultArm64} {
			wg.Go(func() {
				got, err := s.Get(context.Background(), want.Name)
				if err != nil {
					errs <- err
					return
				}
				if diff := cmp.Diff(want, got); diff != "" {
					errs <- errors.New("Get " + want.Name + " (-want +got):\n" + diff)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.callCount(); n < 2 || n > 2*workers {
		t.Errorf("%d GetParameter calls, want 2..%d", n, 2*workers)
	}
	before := f.callCount()
	for _, name := range []string{"linux-x64", "linux-arm64"} {
		if _, err := s.Get(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.callCount(); n != before {
		t.Errorf("after the goroutines, Get made %d more calls, want 0 (cached)", n-before)
	}
}
