package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/spf13/cobra"

	"github.com/spotrunner/spotrunner/libs/statusdoc"
)

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the deployment's status document",
		Long: `Show the status document the stack serves at GET /status: overall status, GitHub
connection, each preset's image, runners by phase, recent activity and warnings.

With --output json the document is printed as served. The request is signed with your AWS
credentials when they are available (needed when the stack's StatusAuthorization is AWS_IAM).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			raw, err := a.fetchStatus(ctx)
			if err != nil {
				return err
			}
			var doc statusdoc.Document
			if err := json.Unmarshal(raw, &doc); err != nil {
				return fmt.Errorf("the status document is not JSON: %w", err)
			}
			if a.output == "json" {
				_, err := a.stdout.Write(raw)
				if len(raw) > 0 && raw[len(raw)-1] != '\n' {
					fmt.Fprintln(a.stdout)
				}
				return err
			}
			return writeStatus(a.stdout, doc)
		},
	}
}

// fetchStatus GETs the status URL, signed for execute-api when AWS credentials are available.
func (a *app) fetchStatus(ctx context.Context) ([]byte, error) {
	statusURL, err := a.resource(ctx, &a.statusURL, "status-url", "StatusUrl")
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(statusURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, usagef("--status-url %q: want an http(s) URL", statusURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statusURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	a.sign(ctx, req)
	p := startProgress(a.stderr, "reading "+statusURL)
	resp, err := a.httpClient.Do(req)
	p.stop()
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", statusURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", statusURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", statusURL, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// sign signs req for API Gateway (execute-api) with the caller's credentials, when the AWS
// config and credentials load; an unsigned request is what a NONE-authorized route wants anyway.
func (a *app) sign(ctx context.Context, req *http.Request) {
	cfg, err := a.awsConfig(ctx)
	if err != nil || cfg.Credentials == nil {
		return
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return
	}
	region := cfg.Region
	// https://<api-id>.execute-api.<region>.amazonaws.com/...: the API's own region.
	if parts := strings.Split(req.URL.Hostname(), "."); len(parts) > 3 && parts[1] == "execute-api" {
		region = parts[2]
	}
	sum := sha256.Sum256(nil)
	_ = v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", region, time.Now())
}

// writeStatus prints the document for people.
func writeStatus(w io.Writer, d statusdoc.Document) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Status:   %s — %s\n", d.Status, d.Message)
	slug := "-"
	if d.GitHub.AppSlug != nil {
		slug = *d.GitHub.AppSlug
	}
	fmt.Fprintf(&b, "GitHub:   %s (app %s): %s\n", d.GitHub.Status, slug, d.GitHub.Message)
	key := "configured"
	if !d.Configuration.PrivateKeyConfigured {
		key = "NOT configured"
	}
	fmt.Fprintf(&b, "App key:  %s\n", key)
	fmt.Fprintf(&b, "Runners:  %d pending, %d provisioning, %d running\n", d.Runners.Pending, d.Runners.Provisioning, d.Runners.Running)
	fmt.Fprintf(&b, "Activity: last hour %d completed, %d failed; last 24 hours %d completed, %d failed\n\n",
		d.RecentActivity.LastHour.Completed, d.RecentActivity.LastHour.Failed, d.RecentActivity.Last24Hours.Completed, d.RecentActivity.Last24Hours.Failed)
	t := newTable(&b, "PRESET", "STATUS", "AMI", "UPDATED")
	for _, p := range d.Presets {
		t.row(p.Name, p.Status, deref(p.AMIID), deref(p.UpdatedAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(d.Warnings) > 0 {
		fmt.Fprintln(&b, "\nWarnings:")
		for _, warning := range d.Warnings {
			fmt.Fprintf(&b, "  - %s\n", warning)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
