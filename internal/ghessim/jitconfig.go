package ghessim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// A JIT config is opaque to clients. Like GitHub's, it is base64 of a JSON object holding the
// files the runner would otherwise write when it registers (".runner", ".credentials"), each
// base64 of JSON, so that a simulated instance can "run" it: ConnectRunner reads it back.

// runnerSettings is the runner's .runner file.
type runnerSettings struct {
	AgentID    int64  `json:"agentId"`
	AgentName  string `json:"agentName"`
	PoolID     int64  `json:"poolId"`
	PoolName   string `json:"poolName"`
	ServerURL  string `json:"serverUrl"`
	GitHubURL  string `json:"gitHubUrl"`
	WorkFolder string `json:"workFolder"`
	Ephemeral  bool   `json:"ephemeral"`
}

// runnerCredentials is the runner's .credentials file.
type runnerCredentials struct {
	Scheme string `json:"scheme"`
	Data   struct {
		ClientID         string `json:"clientId"`
		AuthorizationURL string `json:"authorizationUrl"`
	} `json:"data"`
}

// encodeJITConfig builds rr's config; the caller holds s.mu.
func (s *Server) encodeJITConfig(rr *runnerRecord) string {
	scope := rr.Owner
	if rr.Repo != "" {
		scope += "/" + rr.Repo
	}
	settings := runnerSettings{
		AgentID:    rr.ID,
		AgentName:  rr.Name,
		PoolID:     rr.groupID,
		PoolName:   "Default",
		ServerURL:  s.webURL() + "/_services/pipelines",
		GitHubURL:  s.webURL() + "/" + scope,
		WorkFolder: rr.workFolder,
		Ephemeral:  true,
	}
	var creds runnerCredentials
	creds.Scheme = "OAuth"
	creds.Data.ClientID = rr.clientID
	creds.Data.AuthorizationURL = s.webURL() + "/_services/vstoken/_apis/oauth2/token"
	return b64JSON(map[string]string{".runner": b64JSON(settings), ".credentials": b64JSON(creds)})
}

func b64JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ghessim: encode JIT config: " + err.Error()) // our own types always encode
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeB64JSON(s string, v any) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// ConnectRunner is what `run.sh --jitconfig` does: the runner the config names comes online,
// ready to be given a job. A config is good once, for a runner that still exists, as on GitHub.
func (s *Server) ConnectRunner(encodedJITConfig string) (Runner, error) {
	var files map[string]string
	var settings runnerSettings
	var creds runnerCredentials
	if err := decodeB64JSON(encodedJITConfig, &files); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode JIT config: %w", err)
	}
	if err := decodeB64JSON(files[".runner"], &settings); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode .runner: %w", err)
	}
	if err := decodeB64JSON(files[".credentials"], &creds); err != nil {
		return Runner{}, fmt.Errorf("connect runner: decode .credentials: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rr := s.runners[settings.AgentID]
	switch {
	case rr == nil || rr.clientID != creds.Data.ClientID:
		return Runner{}, fmt.Errorf("connect runner %d (%s): no such runner (deleted, or the config is not one GitHub issued)", settings.AgentID, settings.AgentName)
	case rr.connected:
		return Runner{}, fmt.Errorf("connect runner %d (%s): JIT config already used", rr.ID, rr.Name)
	}
	rr.connected = true
	return rr.public(), nil
}
