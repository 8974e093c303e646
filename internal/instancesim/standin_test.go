package instancesim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runnerServer stands in for the GitHub simulator's runner endpoints (runner.go's protocol, as
// internal/ghessim's play.go serves them): it accepts a config it can decode (the runner is named
// after .runner's agentName), hands every runner the job Job, and ends it with Conclusion. Empty
// Job or Conclusion: that step never comes. Refuse answers every connection with 409. DELETE
// removes the runner (its polls then answer 404).
type runnerServer struct {
	Job        string
	Conclusion string
	Refuse     bool

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	configs  []string      // every config posted, in order
	runners  map[string]*standinRunner
	requests []string // "METHOD path", in order
}

type standinRunner struct {
	id         int
	job        string
	taken      bool
	conclusion string
}

func newRunnerServer(job, conclusion string) *runnerServer {
	return &runnerServer{Job: job, Conclusion: conclusion, changed: make(chan struct{}), runners: map[string]*standinRunner{}}
}

func (s *runnerServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_sim/runners", s.connect)
	mux.HandleFunc("DELETE /_sim/runners/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.runners[r.PathValue("name")]; !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "no runner online"})
			return
		}
		delete(s.runners, r.PathValue("name"))
		s.notify()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/runners/{name}/job", s.poll(func(r *standinRunner) (any, bool) {
		if r.job == "" {
			return nil, false
		}
		r.taken = true
		return map[string]string{"name": r.job}, true
	}))
	mux.HandleFunc("GET /_sim/runners/{name}/done", s.poll(func(r *standinRunner) (any, bool) {
		if r.conclusion == "" {
			return nil, false
		}
		return map[string]string{"conclusion": r.conclusion}, true
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func (s *runnerServer) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *runnerServer) connect(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "the body must be an encoded JIT config"})
		return
	}
	config := strings.TrimSpace(string(body))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.configs = append(s.configs, config)
	name, err := agentName(config)
	switch {
	case err != nil:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "bad JIT config: " + err.Error()})
		return
	case s.Refuse:
		writeJSON(w, http.StatusConflict, map[string]string{"message": "JIT config already used"})
		return
	}
	rr := &standinRunner{id: len(s.runners) + 1, job: s.Job}
	s.runners[name] = rr
	s.notify()
	writeJSON(w, http.StatusCreated, map[string]any{"id": rr.id, "name": name})
}

// poll long-polls for ready, as the simulator does: 200 with its answer, 204 after wait seconds,
// 404 for an unknown runner.
func (s *runnerServer) poll(ready func(*standinRunner) (any, bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
		deadline := time.After(time.Duration(wait) * time.Second)
		for {
			s.mu.Lock()
			rr, ok := s.runners[r.PathValue("name")]
			if !ok {
				s.mu.Unlock()
				writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
				return
			}
			if s.Conclusion != "" && rr.taken && rr.conclusion == "" {
				rr.conclusion = s.Conclusion
			}
			answer, done := ready(rr)
			changed := s.changed
			s.mu.Unlock()
			if done {
				writeJSON(w, http.StatusOK, answer)
				return
			}
			select {
			case <-changed:
			case <-deadline:
				w.WriteHeader(http.StatusNoContent)
				return
			case <-r.Context().Done():
				return
			}
		}
	}
}

// remove deletes a runner, as GitHub deletes one: its polls answer 404.
func (s *runnerServer) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runners, name)
	s.notify()
}

func (s *runnerServer) posted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.configs...)
}

func (s *runnerServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// agentName reads the runner name from a JIT config's .runner.
func agentName(config string) (string, error) {
	files := map[string]string{}
	if err := decodeB64JSON(config, &files); err != nil {
		return "", err
	}
	var runner struct {
		AgentName string `json:"agentName"`
	}
	if err := decodeB64JSON(files[".runner"], &runner); err != nil {
		return "", fmt.Errorf(".runner: %w", err)
	}
	if runner.AgentName == "" {
		return "", fmt.Errorf(".runner has no agentName")
	}
	return runner.AgentName, nil
}

func decodeB64JSON(s string, v any) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(strings.TrimPrefix(string(b), "\ufeff")), v)
}
