package secrets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/awsconfig"
	"github.com/spotrunner/spotrunner/libs/logging"
)

// fakeAPI serves versions by stage and records every call.
type fakeAPI struct {
	values map[string]string // stage -> value; absent stage = ResourceNotFoundException
	err    error
	calls  []string
}

func (f *fakeAPI) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.calls = append(f.calls, aws.ToString(in.SecretId)+"@"+aws.ToString(in.VersionStage))
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.values[aws.ToString(in.VersionStage)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no such version")}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

// TestStoreCaches: fixtures are a fake with a current value only. Reads within the TTL hit memory
// (one call per stage), a read after it asks again, and the never-rotated previous version is
// ok=false (also cached), not an error.
func TestStoreCaches(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{values: map[string]string{"AWSCURRENT": "webhook-secret-value-1"}}
	s := New(api, time.Minute)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()

	for range 3 {
		v, err := s.Current(ctx, "arn:webhook")
		if err != nil || string(v) != "webhook-secret-value-1" {
			t.Fatalf("Current() = %q, %v", v, err)
		}
		if _, ok, err := s.Previous(ctx, "arn:webhook"); ok || err != nil {
			t.Fatalf("Previous() ok=%v err=%v, want not ok, no error", ok, err)
		}
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.Current(ctx, "arn:webhook"); err != nil {
		t.Fatal(err)
	}
	want := []string{"arn:webhook@AWSCURRENT", "arn:webhook@AWSPREVIOUS", "arn:webhook@AWSCURRENT"}
	if diff := cmp.Diff(want, api.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestStoreErrors: a missing secret is ErrNotFound (operator-fixable); any other failure is passed
// on wrapped with the secret id, and is not cached.
func TestStoreErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := New(&fakeAPI{}, time.Minute).Current(ctx, "arn:key")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "arn:key") {
		t.Errorf("missing secret: err = %v, want ErrNotFound naming the id", err)
	}
	boom := errors.New("throttled")
	api := &fakeAPI{err: boom}
	s := New(api, time.Minute)
	for range 2 {
		if _, err := s.Current(ctx, "arn:key"); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	}
	if len(api.calls) != 2 {
		t.Errorf("a failure was cached: %d calls, want 2", len(api.calls))
	}
}

// TestStoreRedacts: a value read through the store never appears in a log line afterwards.
func TestStoreRedacts(t *testing.T) {
	t.Parallel()
	secret := "plain-looking-secret-" + time.Now().Format("150405.000000")
	if _, err := New(&fakeAPI{values: map[string]string{"AWSCURRENT": secret}}, time.Minute).Current(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l, _ := logging.New(&buf, "info")
	l.Info().Str("oops", secret).Msg("debugging")
	if strings.Contains(buf.String(), secret) {
		t.Errorf("secret read through the store was logged: %s", buf.String())
	}
}

// TestStoreAgainstMoto (local world): a secret created and rotated once in moto's Secrets Manager
// gives its new value as current and its old one as previous.
func TestStoreAgainstMoto(t *testing.T) {
	t.Parallel()
	endpoint := world.Endpoint(t)
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{EndpointURL: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	name := "spotrunner-test-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000")
	// A retry of a create that went through (moto drops keep-alive connections now and then)
	// finds the uniquely named secret there: that is ours.
	var exists *types.ResourceExistsException
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("old-secret-value")}); err != nil && !errors.As(err, &exists) {
		t.Fatal(err)
	}
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("new-secret-value")}); err != nil {
		t.Fatal(err)
	}
	s := New(sm, time.Minute)
	cur, err := s.Current(ctx, name)
	if err != nil || string(cur) != "new-secret-value" {
		t.Errorf("Current() = %q, %v; want new-secret-value", cur, err)
	}
	prev, ok, err := s.Previous(ctx, name)
	if err != nil || !ok || string(prev) != "old-secret-value" {
		t.Errorf("Previous() = %q, %v, %v; want old-secret-value", prev, ok, err)
	}
	if _, err := s.Current(ctx, name+"-missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing secret: err = %v, want ErrNotFound", err)
	}
}

// TestRefresh: fixtures are a fake whose current value changes. Refresh reads past the cache and
// reports the change; a second Refresh within 30 s makes no call; after 30 s it reads again.
func TestRefresh(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{values: map[string]string{"AWSCURRENT": "first-secret-value"}}
	s := New(api, 5*time.Minute)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := s.Current(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	api.values["AWSCURRENT"] = "second-secret-value"
	if changed, err := s.Refresh(ctx, "w"); err != nil || changed {
		t.Fatalf("Refresh right after a read = %v, %v; want no call, unchanged", changed, err)
	}
	now = now.Add(31 * time.Second)
	if changed, err := s.Refresh(ctx, "w"); err != nil || !changed {
		t.Fatalf("Refresh = %v, %v; want changed", changed, err)
	}
	if v, _ := s.Current(ctx, "w"); string(v) != "second-secret-value" {
		t.Errorf("Current after Refresh = %q", v)
	}
	if changed, _ := s.Refresh(ctx, "w"); changed {
		t.Error("a second Refresh within 30 s reported a change")
	}
	want := []string{"w@AWSCURRENT", "w@AWSCURRENT"}
	if diff := cmp.Diff(want, api.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestRefreshAfterRotation: fixtures are a fake whose versions are rotated after a warm read of
// both stages (current A, previous missing or an older Z). A Refresh that finds a new current
// value also drops the cached previous one, so the value just rotated out (A, now AWSPREVIOUS) is
// served at once; a Refresh that finds nothing new, or comes within 30 s of the warm read, keeps
// the cache and makes no previous call.
func TestRefreshAfterRotation(t *testing.T) {
	t.Parallel()
	type result struct {
		Changed  bool
		Previous string
		OK       bool
		Calls    []string
	}
	tests := []struct {
		name          string
		before, after map[string]string
		elapsed       time.Duration
		want          result
	}{
		{
			name:    "never rotated before: previous was a cached miss",
			before:  map[string]string{"AWSCURRENT": "secret-A"},
			after:   map[string]string{"AWSCURRENT": "secret-B", "AWSPREVIOUS": "secret-A"},
			elapsed: time.Minute,
			want:    result{true, "secret-A", true, []string{"w@AWSCURRENT", "w@AWSPREVIOUS", "w@AWSCURRENT", "w@AWSPREVIOUS"}},
		},
		{
			name:    "rotated before: previous was the pre-previous value",
			before:  map[string]string{"AWSCURRENT": "secret-A", "AWSPREVIOUS": "secret-Z"},
			after:   map[string]string{"AWSCURRENT": "secret-B", "AWSPREVIOUS": "secret-A"},
			elapsed: time.Minute,
			want:    result{true, "secret-A", true, []string{"w@AWSCURRENT", "w@AWSPREVIOUS", "w@AWSCURRENT", "w@AWSPREVIOUS"}},
		},
		{
			name:    "current unchanged: previous stays cached",
			before:  map[string]string{"AWSCURRENT": "secret-A", "AWSPREVIOUS": "secret-Z"},
			after:   map[string]string{"AWSCURRENT": "secret-A", "AWSPREVIOUS": "secret-Y"},
			elapsed: time.Minute,
			want:    result{false, "secret-Z", true, []string{"w@AWSCURRENT", "w@AWSPREVIOUS", "w@AWSCURRENT"}},
		},
		{
			name:    "within 30 s of the warm read: no call at all",
			before:  map[string]string{"AWSCURRENT": "secret-A"},
			after:   map[string]string{"AWSCURRENT": "secret-B", "AWSPREVIOUS": "secret-A"},
			elapsed: 10 * time.Second,
			want:    result{false, "", false, []string{"w@AWSCURRENT", "w@AWSPREVIOUS"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{values: tt.before}
			now := time.Unix(1000, 0)
			s := New(api, 5*time.Minute).WithClock(func() time.Time { return now })
			ctx := context.Background()
			if _, err := s.Current(ctx, "w"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Previous(ctx, "w"); err != nil {
				t.Fatal(err)
			}

			api.values = tt.after
			now = now.Add(tt.elapsed)
			var got result
			var err error
			if got.Changed, err = s.Refresh(ctx, "w"); err != nil {
				t.Fatal(err)
			}
			prev, ok, err := s.Previous(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			got.Previous, got.OK, got.Calls = string(prev), ok, api.calls
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("after Refresh (-want +got):\n%s", diff)
			}
		})
	}
}
