package ghessim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"sync"
)

// A JIT config is opaque to clients. Like GitHub's, it is base64 of a JSON object holding the
// three files the runner would otherwise write when it registers, each base64 of that file:
//
//   - .runner, the runner's settings;
//   - .credentials, its OAuth client id and token URLs;
//   - .credentials_rsaparams, the RSA-2048 private key it signs its token requests with.
//
// `run.sh --jitconfig` writes them as they are (actions/runner, src/Runner.Listener/Runner.cs)
// and reads them with Newtonsoft.Json, which matches names case-insensitively and converts
// strings to numbers and booleans. The key is two thirds of a config, and the double base64
// makes every byte of a file cost 16/9 bytes: a config comes to 4.3-4.5 KB with ordinary host
// and runner names (5.2 KB with 100-character ones), more than an SSM Standard-tier parameter
// holds (4096 characters), as GitHub's have since mid-2025. ConnectRunner reads a config back
// the way the runner does.

// runnerSettings is .runner as GitHub writes it in a JIT config: the runner's RunnerSettings
// (actions/runner, src/Runner.Common/ConfigurationStore.cs) with PascalCase names and every
// value a string, as in the example of actions/runner#1925:
// {"AgentId":"3","AgentName":"189a9693-…","PoolId":"1","PoolName":null,"ServerUrl":…}.
// The flags are those of a current registration, which goes through GitHub's runner admin
// service and then polls the broker (ConfigurationManager.cs sets UseV2Flow with
// UseRunnerAdminFlow); the simulator puts those services' URLs under its own host.
type runnerSettings struct {
	AgentID            netValue `json:"AgentId"`
	AgentName          netValue `json:"AgentName"`
	PoolID             netValue `json:"PoolId"`
	PoolName           netValue `json:"PoolName"`
	ServerURL          netValue `json:"ServerUrl"`
	GitHubURL          netValue `json:"GitHubUrl"`
	WorkFolder         netValue `json:"WorkFolder"`
	Ephemeral          netValue `json:"Ephemeral"`
	DisableUpdate      netValue `json:"DisableUpdate"`
	UseV2Flow          netValue `json:"UseV2Flow"`
	UseRunnerAdminFlow netValue `json:"UseRunnerAdminFlow"`
	ServerURLV2        netValue `json:"ServerUrlV2"`
}

// runnerCredentials is .credentials: the runner's CredentialData, whose Data is a string map
// with the keys ConfigurationManager.cs writes for a registration that migrates to the V2
// token service.
type runnerCredentials struct {
	Scheme string `json:"Scheme"`
	Data   struct {
		ClientID                     string `json:"clientId"`
		AuthorizationURL             string `json:"authorizationUrl"`
		RequireFipsCryptography      string `json:"requireFipsCryptography"`
		EnableAuthMigrationByDefault string `json:"enableAuthMigrationByDefault,omitempty"`
		AuthorizationURLV2           string `json:"authorizationUrlV2,omitempty"`
	} `json:"Data"`
}

// rsaParams is .credentials_rsaparams: .NET's RSAParameters as the runner serialises them
// (RSAParametersSerializable in src/Runner.Listener/Configuration/IRSAKeyManager.cs), each a
// big-endian byte array at .NET's length for RSA-2048 (modulus and d 256 bytes; p, q, dp, dq
// and inverseQ 128; exponent 3), base64 in JSON.
type rsaParams struct {
	D        []byte `json:"d"`
	DP       []byte `json:"dp"`
	DQ       []byte `json:"dq"`
	Exponent []byte `json:"exponent"`
	InverseQ []byte `json:"inverseQ"`
	Modulus  []byte `json:"modulus"`
	P        []byte `json:"p"`
	Q        []byte `json:"q"`
}

// runnerKeyBits is the size of the key GitHub issues with a JIT config.
const runnerKeyBits = 2048

// runnerKey is a key ready to hand out: its parameters and its .credentials_rsaparams.
type runnerKey struct {
	params  rsaParams
	encoded string
}

// runnerKeyPool is how many keys a process makes. An RSA-2048 key takes tens of milliseconds
// to generate (far more under -race) and the tests register hundreds of runners, so the
// process makes a few, once, on first use, and hands them out in turn: every config still
// carries a full-size key, which ConnectRunner checks; only uniqueness across runners is lost.
const runnerKeyPool = 4

var runnerKeys = sync.OnceValue(func() []runnerKey {
	keys := make([]runnerKey, runnerKeyPool)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := rsa.GenerateKey(rand.Reader, runnerKeyBits)
			if err != nil {
				panic("ghessim: generate runner key: " + err.Error()) // crypto/rand does not fail
			}
			p := netRSAParams(k)
			keys[i] = runnerKey{params: p, encoded: b64JSON(p)}
		})
	}
	wg.Wait()
	return keys
})

// keyFor returns the key runner id's config carries.
func keyFor(id int64) runnerKey {
	keys := runnerKeys()
	return keys[uint64(id)%uint64(len(keys))]
}

// netRSAParams exports k the way .NET's RSA.ExportParameters(true) does.
func netRSAParams(k *rsa.PrivateKey) rsaParams {
	n := (k.N.BitLen() + 7) / 8
	half := (n + 1) / 2
	fixed := func(x *big.Int, size int) []byte { return x.FillBytes(make([]byte, size)) }
	return rsaParams{
		D:        fixed(k.D, n),
		DP:       fixed(k.Precomputed.Dp, half),
		DQ:       fixed(k.Precomputed.Dq, half),
		Exponent: big.NewInt(int64(k.E)).Bytes(),
		InverseQ: fixed(k.Precomputed.Qinv, half),
		Modulus:  fixed(k.N, n),
		P:        fixed(k.Primes[0], half),
		Q:        fixed(k.Primes[1], half),
	}
}

// encodeJITConfig builds rr's config; the caller holds s.mu.
func (s *Server) encodeJITConfig(rr *runnerRecord) string {
	scope := rr.Owner
	if rr.Repo != "" {
		scope += "/" + rr.Repo
	}
	settings := runnerSettings{
		AgentID:            netValue(strconv.FormatInt(rr.ID, 10)),
		AgentName:          netValue(rr.Name),
		PoolID:             netValue(strconv.FormatInt(rr.groupID, 10)),
		PoolName:           "Default",
		ServerURL:          netValue(s.webURL() + "/_services/pipelines/" + s.actionsTenant + "/"),
		GitHubURL:          netValue(s.webURL() + "/" + scope),
		WorkFolder:         netValue(rr.workFolder),
		Ephemeral:          "True",
		DisableUpdate:      "False",
		UseV2Flow:          "True",
		UseRunnerAdminFlow: "True",
		ServerURLV2:        netValue(s.webURL() + "/_services/broker/"),
	}
	var creds runnerCredentials
	creds.Scheme = "OAuth"
	creds.Data.ClientID = rr.clientID
	creds.Data.AuthorizationURL = s.webURL() + "/_services/vstoken/_apis/oauth2/token/" + s.actionsTenantID
	creds.Data.RequireFipsCryptography = "True"
	creds.Data.EnableAuthMigrationByDefault = "true"
	creds.Data.AuthorizationURLV2 = s.webURL() + "/_services/token/_apis/oauth2/token/" + s.actionsTenantID
	return b64JSON(jitFilesJSON{Runner: b64JSON(settings), Credentials: b64JSON(creds), RSAParams: keyFor(rr.ID).encoded})
}

// jitFilesJSON is the object a config encodes, in GitHub's order (.runner first).
type jitFilesJSON struct {
	Runner      string `json:".runner"`
	Credentials string `json:".credentials"`
	RSAParams   string `json:".credentials_rsaparams"`
}

// netValue is a settings value as the runner's Newtonsoft.Json reads it: a JSON string, number
// or boolean (GitHub writes strings; bootstrap.sh adds `"disableUpdate": true`), kept as text.
type netValue string

func (v *netValue) UnmarshalJSON(b []byte) error {
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	switch x := x.(type) {
	case string:
		*v = netValue(x)
	case nil:
		*v = ""
	case float64, bool:
		*v = netValue(b)
	default:
		return fmt.Errorf("settings value %s is not a string, number or boolean", b)
	}
	return nil
}

func b64JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ghessim: encode JIT config: " + err.Error()) // our own types always encode
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decodeB64JSON decodes base64 of JSON, with or without the byte order mark .NET may write.
func decodeB64JSON(s string, v any) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(bytes.TrimPrefix(b, []byte("\ufeff")), v)
}

// ConnectRunner is what `run.sh --jitconfig` does: the runner the config names comes online,
// ready to be given a job. A config is good once, for a runner that still exists, as on GitHub,
// and only with the client id and the key GitHub issued with it.
func (s *Server) ConnectRunner(encodedJITConfig string) (Runner, error) {
	var files map[string]string
	var settings runnerSettings
	var creds runnerCredentials
	var key rsaParams
	if err := decodeB64JSON(encodedJITConfig, &files); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode JIT config: %w", err)
	}
	if err := decodeB64JSON(files[".runner"], &settings); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode .runner: %w", err)
	}
	if err := decodeB64JSON(files[".credentials"], &creds); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode .credentials: %w", err)
	}
	if err := decodeB64JSON(files[".credentials_rsaparams"], &key); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode .credentials_rsaparams: %w", err)
	}
	id, err := strconv.ParseInt(string(settings.AgentID), 10, 64)
	if err != nil {
		return Runner{}, fmt.Errorf("connect runner %q: .runner AgentId: %w", settings.AgentID, err)
	}
	if len(key.Modulus) != runnerKeyBits/8 {
		return Runner{}, fmt.Errorf("connect runner %d (%s): .credentials_rsaparams modulus is %d bytes, want %d", id, settings.AgentName, len(key.Modulus), runnerKeyBits/8)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rr := s.runners[id]
	switch {
	case rr == nil || rr.clientID != creds.Data.ClientID:
		return Runner{}, fmt.Errorf("connect runner %d (%s): no such runner (deleted, or the config is not one GitHub issued)", id, settings.AgentName)
	case !bytes.Equal(key.Modulus, keyFor(rr.ID).params.Modulus):
		return Runner{}, fmt.Errorf("connect runner %d (%s): .credentials_rsaparams is not the key GitHub issued with the config", id, settings.AgentName)
	case rr.connected:
		return Runner{}, fmt.Errorf("connect runner %d (%s): JIT config already used", rr.ID, rr.Name)
	}
	rr.connected = true
	return rr.public(), nil
}
