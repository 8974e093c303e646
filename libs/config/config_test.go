package config

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
)

type sample struct {
	QueueURL string        `env:"QUEUE_URL, required"`
	Timeout  time.Duration `env:"TIMEOUT, default=5s"`
	MaxBody  int           `env:"MAX_BODY, default=1048576"`
}

func (s *sample) Validate() error {
	if s.MaxBody <= 0 {
		return errors.New("MAX_BODY must be positive")
	}
	return nil
}

// TestLoad feeds environments as maps: a complete one must load with defaults applied; each broken
// one must fail with an error naming the variable at fault.
func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    sample
		wantErr string
	}{
		{
			name: "defaults",
			env:  map[string]string{"QUEUE_URL": "http://127.0.0.1/q"},
			want: sample{QueueURL: "http://127.0.0.1/q", Timeout: 5 * time.Second, MaxBody: 1 << 20},
		},
		{
			name: "overrides",
			env:  map[string]string{"QUEUE_URL": "q", "TIMEOUT": "2s", "MAX_BODY": "10"},
			want: sample{QueueURL: "q", Timeout: 2 * time.Second, MaxBody: 10},
		},
		{name: "missing required", env: map[string]string{}, wantErr: "QUEUE_URL"},
		{name: "malformed", env: map[string]string{"QUEUE_URL": "q", "TIMEOUT": "soon"}, wantErr: "TIMEOUT"},
		{name: "validator", env: map[string]string{"QUEUE_URL": "q", "MAX_BODY": "-1"}, wantErr: "MAX_BODY must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got sample
			err := LoadFrom(context.Background(), &got, envconfig.MapLookuper(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadFrom() error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadFrom() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LoadFrom() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
