package lambdasim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/world"
)

// TestDeploy (local world): fixtures are the five real services, built for this machine, and
// template.yaml deployed by Deploy into moto, with the GitHub simulator as GHES (its App key in
// Secrets Manager, the generated webhook secret to sign with). Each function starts with the
// environment the template gives it and serves the event source the template gives it:
//   - a signed ping through the front door is answered 200 by ingest (the webhook secret it reads
//     is the one created);
//   - GET /status is answered 200 with a JSON document by status;
//   - a queued spotrunner job's webhook reaches the job queue through ingest and the provisioner's
//     SQS event source hands it to the provisioner;
//   - the reaper's schedule, fired, runs the reaper to its end;
//   - no emulator is replaced on the way, and Close leaves no service running.
func TestDeploy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := world.AWS(t)
	emulator := rie(t)
	root := world.Root()
	bins, err := Build(ctx, root, filepath.Join(root, ".cache", "lambdasim", runtime.GOOS+"_"+runtime.GOARCH))
	if err != nil {
		t.Fatal(err)
	}

	// The simulator needs the webhook secret Deploy generates, and Deploy its URL: serve a
	// handler first, the simulator behind it once the secret exists.
	var sim atomic.Pointer[ghessim.Server]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := sim.Load(); s != nil {
			s.ServeHTTP(w, r)
			return
		}
		http.Error(w, "simulator not started", http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	key, err := secretsmanager.NewFromConfig(cfg).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(world.Name(t, "app-key")), SecretString: aws.String(string(ghessim.AppKeyPEM())),
	})
	if err != nil {
		t.Fatal(err)
	}

	logDir := t.TempDir()
	start := time.Now()
	d, err := Deploy(ctx, DeployOptions{
		Template:  loadTemplate(t),
		StackName: "Deploy" + time.Now().Format("150405.000000")[7:],
		AWS:       cfg,
		Parameters: map[string]string{
			"GitHubServerUrl": ts.URL, "GitHubAppId": "42", "PrivateKeySecretArn": aws.ToString(key.ARN),
			"RunnerSubnetIds": "subnet-11111111,subnet-22222222", "RunnerSecurityGroupId": "sg-11111111",
		},
		Attributes: map[string]string{
			"RunnerImageLinuxX64.Outputs.ImagePipelineArn":   "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/x64",
			"RunnerImageLinuxArm64.Outputs.ImagePipelineArn": "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/arm64",
		},
		Binaries:      bins,
		RIE:           emulator,
		Instances:     1,
		LogDir:        logDir,
		ScheduleEvery: Manual,
		OnError:       func(err error) { t.Logf("event source: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deployed in %v", time.Since(start))
	t.Cleanup(func() {
		if t.Failed() {
			for id := range d.Functions {
				if raw, err := os.ReadFile(filepath.Join(logDir, id+".log")); err == nil {
					t.Logf("%s log:\n%s", id, raw)
				}
			}
		}
	})
	defer d.Close()

	// Host: the GitHub host ingest expects is GitHubServerUrl's.
	s := ghessim.New(ghessim.Options{AppID: 42, AppPublicKey: &ghessim.AppKey().PublicKey, Host: "127.0.0.1",
		WebhookSecret: []byte(d.Resources.Secrets["WebhookSecret"].Value)})
	t.Cleanup(s.Close)
	sim.Store(s)
	s.AddInstallation(7, "acme", "Organization")
	s.AddRepo("acme", "app", true)

	for i, what := range []string{"cold", "warm"} {
		began := time.Now()
		_, status, err := s.SendPing(ctx, d.URL+"/webhook")
		if err != nil || status != http.StatusOK {
			t.Fatalf("ping %d: %d %v", i, status, err)
		}
		t.Logf("ping through the front door, %s: %v", what, time.Since(began))
	}

	resp, err := http.Get(d.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Errorf("GET /status: %d, %v", resp.StatusCode, err)
	}

	s.AddJob(ghessim.Job{ID: 9001, RunID: 1, RunAttempt: 1, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "spotrunner/linux-x64"}})
	if _, status, err := s.SendWorkflowJob(ctx, d.URL+"/webhook", 9001, "queued"); err != nil || status/100 != 2 {
		t.Fatalf("queued webhook: %d %v", status, err)
	}
	waitFor(t, 20*time.Second, "the provisioner did not log job 9001", func() bool {
		raw, _ := os.ReadFile(filepath.Join(logDir, "ProvisionerFunction.log"))
		return strings.Contains(string(raw), `"jobId":"9001"`)
	})
	if st := d.Pollers["ProvisionerFunction"].Stats(); st.Batches == 0 {
		t.Errorf("provisioner event source: %+v, want a batch", st)
	}

	if _, err := d.Timers["ReaperFunction"].Fire(ctx); err != nil {
		t.Errorf("reaper run: %v", err)
	}

	for id, fn := range d.Functions {
		if st := fn.Stats(); st.Restarts != 0 {
			t.Errorf("%s: %+v, want no emulator replaced", id, st)
		}
	}
	d.Close()
	for service, bin := range bins {
		if left := processesRunning(t, bin); len(left) > 0 {
			t.Errorf("%s still running after Close: %v", service, left)
		}
	}
}
