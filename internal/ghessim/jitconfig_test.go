package ghessim

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// SSM Parameter Store's value limits, which a JIT config must be measured against: GitHub's do
// not fit the Standard tier and do fit the Advanced one.
const (
	ssmStandardMax = 4096
	ssmAdvancedMax = 8192
)

// TestJITConfigFiles: no fixtures. Each case registers one JIT runner (org or repo level, on
// the default or a longer GHES host, with short or long names) and its encoded_jit_config must
// hold exactly GitHub's three files: .runner with the runner's settings as strings, .credentials
// with an OAuth client id, and .credentials_rsaparams with a whole RSA-2048 private key at
// .NET's fixed lengths. The config must be too big for an SSM Standard-tier parameter and small
// enough for an Advanced one, and ConnectRunner must accept it.
func TestJITConfigFiles(t *testing.T) {
	t.Parallel()
	longRepo := strings.Repeat("r", 100) // GitHub's longest repository name
	tests := []struct {
		name       string
		host       string // GHES host; "" for the default
		scope      string // "orgs/acme" or "repos/acme/<repo>"
		runner     string
		workFolder string // "" for the default
		wantGitHub string // GitHubUrl after https://<host>/
	}{
		{name: "org runner named by the provisioner", scope: "orgs/acme", runner: "spotrunner-i-0123456789abcdef0", wantGitHub: "acme"},
		{name: "short runner name", scope: "orgs/acme", runner: "i-1", wantGitHub: "acme"},
		{name: "repo runner with a work folder", scope: "repos/acme/app", runner: "spotrunner-i-0123456789abcdef0", workFolder: "w", wantGitHub: "acme/app"},
		{name: "enterprise host name", host: "github.example-corp.com", scope: "orgs/acme", runner: "spotrunner-i-0123456789abcdef0", wantGitHub: "acme"},
		{name: "long names everywhere", host: "github-enterprise.engineering.example-corporation.com", scope: "repos/acme/" + longRepo,
			runner: strings.Repeat("n", 64), workFolder: strings.Repeat("w", 100), wantGitHub: "acme/" + longRepo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSimAt(t, tt.host)
			s.AddRepo(testOrg, longRepo, true)
			tok := installationToken(t, base, strconv.Itoa(testOrgInst))
			body := map[string]any{"name": tt.runner, "runner_group_id": 1, "labels": []string{"self-hosted"}}
			if tt.workFolder != "" {
				body["work_folder"] = tt.workFolder
			}
			r := call(t, "POST", base+"/api/v3/"+tt.scope+"/actions/runners/generate-jitconfig", "token "+tok, body)
			if r.status != http.StatusCreated {
				t.Fatalf("generate-jitconfig: %d %s", r.status, r.body)
			}
			var out struct {
				Runner           struct{ ID int64 }
				EncodedJITConfig string `json:"encoded_jit_config"`
			}
			r.decode(t, &out)
			cfg := out.EncodedJITConfig
			t.Logf("encoded_jit_config: %d characters", len(cfg))
			if len(cfg) <= ssmStandardMax || len(cfg) >= ssmAdvancedMax {
				t.Errorf("encoded_jit_config is %d characters, want %d < n < %d (over the Standard tier, under the Advanced one)", len(cfg), ssmStandardMax, ssmAdvancedMax)
			}

			files := jitFiles(t, cfg)
			if diff := cmp.Diff([]string{".credentials", ".credentials_rsaparams", ".runner"}, slices.Sorted(maps.Keys(files))); diff != "" {
				t.Fatalf("files (-want +got):\n%s", diff)
			}

			host := tt.host
			if host == "" {
				host = "ghes.local"
			}
			web := "https://" + host
			var settings map[string]any
			decodeJSON(t, ".runner", files[".runner"], &settings)
			serverURL, _ := settings["ServerUrl"].(string)
			if !regexp.MustCompile(`^` + regexp.QuoteMeta(web) + `/_services/pipelines/[0-9A-Za-z]{50}/$`).MatchString(serverURL) {
				t.Errorf("ServerUrl = %q, want %s/_services/pipelines/<tenant>/", serverURL, web)
			}
			delete(settings, "ServerUrl")
			workFolder := tt.workFolder
			if workFolder == "" {
				workFolder = "_work"
			}
			wantSettings := map[string]any{
				"AgentId": strconv.FormatInt(out.Runner.ID, 10), "AgentName": tt.runner, "PoolId": "1", "PoolName": "Default",
				"GitHubUrl": web + "/" + tt.wantGitHub, "WorkFolder": workFolder, "Ephemeral": "True", "DisableUpdate": "False",
				"UseV2Flow": "True", "UseRunnerAdminFlow": "True", "ServerUrlV2": web + "/_services/broker/",
			}
			if diff := cmp.Diff(wantSettings, settings); diff != "" {
				t.Errorf(".runner (-want +got):\n%s", diff)
			}

			var creds struct {
				Scheme string
				Data   map[string]string
			}
			decodeJSON(t, ".credentials", files[".credentials"], &creds)
			if creds.Scheme != "OAuth" || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(creds.Data["clientId"]) ||
				!strings.HasPrefix(creds.Data["authorizationUrl"], web+"/_services/vstoken/_apis/oauth2/token/") ||
				!strings.HasPrefix(creds.Data["authorizationUrlV2"], web+"/_services/token/_apis/oauth2/token/") ||
				creds.Data["requireFipsCryptography"] != "True" || creds.Data["enableAuthMigrationByDefault"] != "true" {
				t.Errorf(".credentials = %+v, want OAuth with a client GUID and this host's token URLs", creds)
			}

			checkRSAParams(t, files[".credentials_rsaparams"])

			if _, err := s.ConnectRunner(cfg); err != nil {
				t.Errorf("ConnectRunner: %v", err)
			}
		})
	}
}

// checkRSAParams checks that raw is a whole RSA-2048 private key as .NET's RSAParameters
// serialise it: every field, each at .NET's length, making a key that validates.
func checkRSAParams(t *testing.T, raw []byte) {
	t.Helper()
	var fields map[string]string
	decodeJSON(t, ".credentials_rsaparams", raw, &fields)
	wantLen := map[string]int{"d": 256, "dp": 128, "dq": 128, "exponent": 3, "inverseQ": 128, "modulus": 256, "p": 128, "q": 128}
	got := map[string][]byte{}
	gotLen := map[string]int{}
	for name, v := range fields {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf(".credentials_rsaparams %s is not base64: %v", name, err)
		}
		got[name], gotLen[name] = b, len(b)
	}
	if diff := cmp.Diff(wantLen, gotLen); diff != "" {
		t.Fatalf(".credentials_rsaparams field lengths in bytes (-want +got):\n%s", diff)
	}
	n := func(name string) *big.Int { return new(big.Int).SetBytes(got[name]) }
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n("modulus"), E: int(n("exponent").Int64())},
		D:         n("d"),
		Primes:    []*big.Int{n("p"), n("q")},
	}
	if err := key.Validate(); err != nil {
		t.Errorf(".credentials_rsaparams is not a valid RSA key: %v", err)
	}
	key.Precompute()
	if key.Precomputed.Dp.Cmp(n("dp")) != 0 || key.Precomputed.Dq.Cmp(n("dq")) != 0 || key.Precomputed.Qinv.Cmp(n("inverseQ")) != 0 {
		t.Errorf(".credentials_rsaparams dp, dq or inverseQ do not belong to its key")
	}
}

// jitFiles decodes an encoded JIT config into its files.
func jitFiles(t *testing.T, cfg string) map[string][]byte {
	t.Helper()
	var enc map[string]string
	if err := decodeB64JSON(cfg, &enc); err != nil {
		t.Fatalf("config: %v", err)
	}
	files := map[string][]byte{}
	for name, v := range enc {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("%s is not base64: %v", name, err)
		}
		files[name] = b
	}
	return files
}

// editJIT returns cfg with its files decoded, changed by edit and encoded again.
func editJIT(t *testing.T, cfg string, edit func(files map[string][]byte)) string {
	t.Helper()
	files := jitFiles(t, cfg)
	edit(files)
	enc := map[string]string{}
	for name, b := range files {
		enc[name] = base64.StdEncoding.EncodeToString(b)
	}
	return b64JSON(enc)
}

// jsonOf is v in JSON.
func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeJSON(t *testing.T, what string, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, raw)
	}
}
