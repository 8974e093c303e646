package instancesim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spotrunner/spotrunner/internal/world"
)

// jitConfig is shaped like GitHub's encoded_jit_config: base64 of a JSON object whose values are
// the base64 runner files (.runner with a byte order mark, as .NET writes it).
type jitConfig struct {
	value string
	name  string            // the runner's name (agentName)
	files map[string]string // decoded
}

func newJITConfig(t *testing.T, name string) jitConfig {
	t.Helper()
	files := map[string]string{
		".runner": "\ufeff" + fmt.Sprintf(`{"agentId":42,"agentName":%q,"poolId":1,"poolName":"Default",`+
			`"serverUrl":"https://pipelines.example/abc","gitHubUrl":"https://ghes.example/octo-org","workFolder":"_work","ephemeral":true,"DisableUpdate":"False"}`, name),
		".credentials":           fmt.Sprintf(`{"scheme":"OAuth","data":{"clientId":"client-%s"}}`, randomHex(t, 16)),
		".credentials_rsaparams": fmt.Sprintf(`{"d":"private-%s","exponent":"AQAB"}`, randomHex(t, 32)),
	}
	enc := map[string]string{}
	for k, v := range files {
		enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	outer, err := json.Marshal(enc)
	if err != nil {
		t.Fatal(err)
	}
	return jitConfig{value: base64.StdEncoding.EncodeToString(outer), name: name, files: files}
}

// decodeJIT decodes a config into its files, .runner as a JSON object.
func decodeJIT(t *testing.T, value string) map[string]any {
	t.Helper()
	enc := map[string]string{}
	if err := decodeB64JSON(value, &enc); err != nil {
		t.Fatalf("config does not decode: %v", err)
	}
	got := map[string]any{}
	for k, v := range enc {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("%s is not base64: %v", k, err)
		}
		got[k] = string(b)
	}
	var runner map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got[".runner"].(string), "\ufeff")), &runner); err != nil {
		t.Fatalf(".runner is not JSON: %v", err)
	}
	got[".runner"] = runner
	return got
}

// withoutUpdate is the config the runner must get after the bootstrap: the same files, .runner
// marked DisableUpdate (and no other spelling of it left).
func (j jitConfig) withoutUpdate(t *testing.T) map[string]any {
	t.Helper()
	var runner map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(j.files[".runner"], "\ufeff")), &runner); err != nil {
		t.Fatal(err)
	}
	delete(runner, "DisableUpdate")
	runner["DisableUpdate"] = true
	return map[string]any{".runner": runner, ".credentials": j.files[".credentials"], ".credentials_rsaparams": j.files[".credentials_rsaparams"]}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

// testTools writes the sandbox's tools, or ends the test: skipped when a tool is missing, failed
// under the local world (SPOTRUNNER_WORLD=1), which must have them.
func testTools(t *testing.T) string {
	t.Helper()
	dir, err := writeTools(t.TempDir())
	if err != nil {
		if world.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return dir
}

// caPEM is the PEM of a TLS test server's certificate, which curl --cacert then trusts.
func caPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// waitFor polls cond every 50 ms until it holds or d passes, and reports whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
