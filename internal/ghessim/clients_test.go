package ghessim

import (
	"errors"
	"net/http"
	"testing"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v84/github"
)

// TestRealClients: no fixtures. The clients the services use (ghinstallation for app and
// installation auth, go-github with enterprise URLs) must work against the simulator end to end:
// find the installation, register a JIT runner (and get 409 for a second one of that name), list
// it, read a job, page through deliveries with the cursor, redeliver, and see an injected
// secondary rate limit as go-github's rate-limit error.
func TestRealClients(t *testing.T) {
	t.Parallel()
	s, base := startSim(t)
	ctx := t.Context()

	apps := ghinstallation.NewAppsTransportFromPrivateKey(http.DefaultTransport, testAppID, appKey())
	apps.BaseURL = base + apiPrefix
	appClient, err := github.NewClient(&http.Client{Transport: apps}).WithEnterpriseURLs(base, base)
	if err != nil {
		t.Fatal(err)
	}
	inst, _, err := appClient.Apps.FindOrganizationInstallation(ctx, testOrg)
	if err != nil || inst.GetID() != testOrgInst {
		t.Fatalf("FindOrganizationInstallation = %v, %v", inst, err)
	}

	itr := ghinstallation.NewFromAppsTransport(apps, inst.GetID())
	itr.BaseURL = apps.BaseURL
	client, err := github.NewClient(&http.Client{Transport: itr}).WithEnterpriseURLs(base, base)
	if err != nil {
		t.Fatal(err)
	}
	req := &github.GenerateJITConfigRequest{Name: "i-0abc", RunnerGroupID: 1, Labels: []string{"self-hosted", "spotrunner/small"}}
	jit, _, err := client.Actions.GenerateOrgJITConfig(ctx, testOrg, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConnectRunner(jit.GetEncodedJITConfig()); err != nil {
		t.Errorf("the config go-github received does not connect: %v", err)
	}
	_, resp, err := client.Actions.GenerateOrgJITConfig(ctx, testOrg, req)
	if resp == nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("second GenerateOrgJITConfig = %v, want 409", err)
	}
	runners, _, err := client.Actions.ListOrganizationRunners(ctx, testOrg, &github.ListRunnersOptions{Name: github.Ptr("i-0abc")})
	if err != nil || runners.TotalCount != 1 || runners.Runners[0].GetID() != jit.GetRunner().GetID() || runners.Runners[0].GetStatus() != "online" {
		t.Errorf("ListOrganizationRunners = %+v, %v", runners, err)
	}

	s.AddJob(Job{ID: 5, RunID: 6, Owner: testOrg, Repo: "app", Name: "build", Labels: []string{"self-hosted"}})
	job, _, err := client.Actions.GetWorkflowJobByID(ctx, testOrg, "app", 5)
	if err != nil || job.GetStatus() != "queued" || job.RunnerName != nil {
		t.Errorf("GetWorkflowJobByID = %+v, %v", job, err)
	}

	rc := startReceiver(t, http.StatusOK)
	var sent []string
	for range 3 {
		guid, _, err := s.SendWorkflowJob(ctx, rc.url, 5, "queued")
		if err != nil {
			t.Fatal(err)
		}
		sent = append([]string{guid}, sent...) // newest first, like the list
	}
	var listed []string
	var firstID int64
	opts := &github.ListCursorOptions{PerPage: 2}
	for {
		page, resp, err := appClient.Apps.ListHookDeliveries(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			listed = append(listed, d.GetGUID())
			if firstID == 0 {
				firstID = d.GetID()
			}
		}
		if resp.Cursor == "" {
			break
		}
		opts.Cursor = resp.Cursor
	}
	if diff := cmp.Diff(sent, listed); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	// go-github reports GitHub's 202 as an *AcceptedError, which callers must treat as success.
	var accepted *github.AcceptedError
	if _, _, err := appClient.Apps.RedeliverHookDelivery(ctx, firstID); !errors.As(err, &accepted) {
		t.Errorf("RedeliverHookDelivery = %v, want *github.AcceptedError", err)
	}

	s.Fail("GET /orgs/*/actions/runners", 1, http.StatusForbidden, WithRateLimit())
	var limited *github.RateLimitError
	if _, _, err := client.Actions.ListOrganizationRunners(ctx, testOrg, nil); !errors.As(err, &limited) {
		t.Errorf("rate-limited ListOrganizationRunners = %v, want *github.RateLimitError", err)
	}
}
