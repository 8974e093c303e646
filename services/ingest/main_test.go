package main

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"github.com/spotrunner/spotrunner/libs/config"
)

// TestAllowPublicRepos: fixtures are environments of ingest (server URL and ALLOW_PUBLIC_REPOS
// unset, auto, true, false or malformed), loaded as main does. Unset and auto must ignore public
// repositories on github.com and serve them on a GHES host; true and false must win on both; a
// malformed value must stop the start with an error naming the variable and the value.
func TestAllowPublicRepos(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		server  string
		setting *string // nil = unset
		want    bool
		wantErr string
	}{
		{name: "github.com, unset", server: "https://github.com", want: false},
		{name: "github.com, auto", server: "https://github.com", setting: ptr("auto"), want: false},
		{name: "github.com, host in capitals", server: "https://GitHub.com/", setting: ptr("auto"), want: false},
		{name: "GHES, unset", server: "https://ghes.example.com", want: true},
		{name: "GHES, AUTO", server: "https://ghes.example.com", setting: ptr("AUTO"), want: true},
		{name: "github.com, explicit true", server: "https://github.com", setting: ptr("true"), want: true},
		{name: "GHES, explicit false", server: "https://ghes.example.com", setting: ptr("false"), want: false},
		{name: "GHES, explicit True", server: "https://ghes.example.com", setting: ptr("True"), want: true},
		{name: "bad value", server: "https://github.com", setting: ptr("yes"), wantErr: `ALLOW_PUBLIC_REPOS "yes": want auto, true or false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{
				"QUEUE_URL":          "https://sqs.example/q.fifo",
				"WEBHOOK_SECRET_ARN": "arn:webhook",
				"GITHUB_SERVER_URL":  tt.server,
			}
			if tt.setting != nil {
				env["ALLOW_PUBLIC_REPOS"] = *tt.setting
			}
			var cfg Config
			err := config.LoadFrom(context.Background(), &cfg, envconfig.MapLookuper(env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("load config: err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := allowPublicRepos(cfg.AllowPublicRepos, cfg.GitHubServerURL)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("public repositories served (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr(s string) *string { return &s }
