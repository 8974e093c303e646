package ghessim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGenerateJITConfig: no fixtures. One runner "taken" already exists for org acme; each case
// asks for a JIT config and must get GitHub's answer: 201 with the runner and a config, 409 for a
// name already used at the same level (not at another), 422 for a body the schema refuses, 404
// for a runner group that does not exist, 400 for a body that is not JSON.
func TestGenerateJITConfig(t *testing.T) {
	t.Parallel()
	labels := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("l%d", i)
		}
		return out
	}
	tests := []struct {
		name  string
		scope string
		body  any
		want  int
	}{
		{"org", "orgs/acme", map[string]any{"name": "r1", "runner_group_id": 1, "labels": []string{"self-hosted", "spotrunner/small"}}, http.StatusCreated},
		{"repo", "repos/acme/app", map[string]any{"name": "r1", "runner_group_id": 1, "labels": []string{"self-hosted"}, "work_folder": "w"}, http.StatusCreated},
		{"user repo", "repos/octocat/tools", map[string]any{"name": "r1", "runner_group_id": 1, "labels": []string{"self-hosted"}}, http.StatusCreated},
		{"taken name at the org", "orgs/acme", map[string]any{"name": "taken", "runner_group_id": 1, "labels": []string{"x"}}, http.StatusConflict},
		{"taken name, other case", "orgs/acme", map[string]any{"name": "TAKEN", "runner_group_id": 1, "labels": []string{"x"}}, http.StatusConflict},
		{"taken name at the org is free at a repo", "repos/acme/app", map[string]any{"name": "taken", "runner_group_id": 1, "labels": []string{"x"}}, http.StatusCreated},
		{"100 labels", "orgs/acme", map[string]any{"name": "r1", "runner_group_id": 1, "labels": labels(100)}, http.StatusCreated},
		{"101 labels", "orgs/acme", map[string]any{"name": "r1", "runner_group_id": 1, "labels": labels(101)}, http.StatusUnprocessableEntity},
		{"no labels", "orgs/acme", map[string]any{"name": "r1", "runner_group_id": 1, "labels": []string{}}, http.StatusUnprocessableEntity},
		{"labels missing", "orgs/acme", map[string]any{"name": "r1", "runner_group_id": 1}, http.StatusUnprocessableEntity},
		{"name missing", "orgs/acme", map[string]any{"runner_group_id": 1, "labels": []string{"x"}}, http.StatusUnprocessableEntity},
		{"group missing", "orgs/acme", map[string]any{"name": "r1", "labels": []string{"x"}}, http.StatusUnprocessableEntity},
		{"unknown group", "orgs/acme", map[string]any{"name": "r1", "runner_group_id": 7, "labels": []string{"x"}}, http.StatusNotFound},
		{"not JSON", "orgs/acme", rawJSON("{"), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			orgTok := installationToken(t, base, strconv.Itoa(testOrgInst))
			generateRunner(t, base, "orgs/acme", orgTok, "taken", "x")
			tok := orgTok
			if tt.scope == "repos/octocat/tools" {
				tok = installationToken(t, base, strconv.Itoa(testUsrInst))
			}
			got := call(t, "POST", base+"/api/v3/"+tt.scope+"/actions/runners/generate-jitconfig", "token "+tok, tt.body)
			if got.status != tt.want {
				t.Fatalf("status = %d, want %d; body %s", got.status, tt.want, got.body)
			}
			if tt.want != http.StatusCreated {
				if n := len(s.Runners()); n != 1 {
					t.Errorf("%d runners after a refused request, want 1", n)
				}
				return
			}
			var out struct {
				Runner struct {
					ID     int64
					Name   string
					Status string
					Busy   bool
					Labels []struct{ Name, Type string }
				}
				EncodedJITConfig string `json:"encoded_jit_config"`
			}
			got.decode(t, &out)
			r, ok := s.runner(out.Runner.ID)
			if !ok {
				t.Fatalf("runner %d is not in Runners()", out.Runner.ID)
			}
			if r.JITConfig != out.EncodedJITConfig || r.Status != "offline" || r.Busy {
				t.Errorf("runner = %+v; want offline, idle, with the config answered", r)
			}
			var names []string
			for _, l := range out.Runner.Labels {
				names = append(names, l.Name)
			}
			if diff := cmp.Diff(tt.body.(map[string]any)["labels"], names); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
		})
	}
}

// runner returns the runner with that id from Runners().
func (s *Server) runner(id int64) (Runner, bool) {
	for _, r := range s.Runners() {
		if r.ID == id {
			return r, true
		}
	}
	return Runner{}, false
}

// TestRunnerRoutes: no fixtures. Org acme gets runners a, b, c and repo acme/app gets runner d;
// runner b is busy with job 1. Each case calls a list/get/delete route and must get GitHub's
// status and the runners of that level only.
func TestRunnerRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		method    string
		path      string // {a}, {b} and {d} stand for those runners' ids
		want      int
		wantNames []string // for lists and gets
		wantTotal int      // for lists
	}{
		{"list org", "GET", "/orgs/acme/actions/runners", http.StatusOK, []string{"a", "b", "c"}, 3},
		{"list org by name", "GET", "/orgs/acme/actions/runners?name=B", http.StatusOK, []string{"b"}, 1},
		{"list org page 2 of 2", "GET", "/orgs/acme/actions/runners?per_page=2&page=2", http.StatusOK, []string{"c"}, 3},
		{"list past the end", "GET", "/orgs/acme/actions/runners?page=9", http.StatusOK, nil, 3},
		{"list repo", "GET", "/repos/acme/app/actions/runners", http.StatusOK, []string{"d"}, 1},
		{"get org runner", "GET", "/orgs/acme/actions/runners/{a}", http.StatusOK, []string{"a"}, 0},
		{"get repo runner", "GET", "/repos/acme/app/actions/runners/{d}", http.StatusOK, []string{"d"}, 0},
		{"org runner not at repo level", "GET", "/repos/acme/app/actions/runners/{a}", http.StatusNotFound, nil, 0},
		{"repo runner not at org level", "GET", "/orgs/acme/actions/runners/{d}", http.StatusNotFound, nil, 0},
		{"unknown runner", "GET", "/orgs/acme/actions/runners/999", http.StatusNotFound, nil, 0},
		{"delete idle", "DELETE", "/orgs/acme/actions/runners/{a}", http.StatusNoContent, nil, 0},
		{"delete repo runner", "DELETE", "/repos/acme/app/actions/runners/{d}", http.StatusNoContent, nil, 0},
		{"delete busy", "DELETE", "/orgs/acme/actions/runners/{b}", http.StatusUnprocessableEntity, nil, 0},
		{"delete unknown", "DELETE", "/orgs/acme/actions/runners/999", http.StatusNotFound, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			tok := installationToken(t, base, strconv.Itoa(testOrgInst))
			a, _ := generateRunner(t, base, "orgs/acme", tok, "a", "self-hosted")
			b, _ := generateRunner(t, base, "orgs/acme", tok, "b", "self-hosted")
			generateRunner(t, base, "orgs/acme", tok, "c", "self-hosted")
			d, _ := generateRunner(t, base, "repos/acme/app", tok, "d", "self-hosted")
			s.AddJob(Job{ID: 1, RunID: 1, Owner: "acme", Repo: "app", Name: "build", Labels: []string{"self-hosted"}})
			if err := s.AssignJob(1, "b"); err != nil {
				t.Fatal(err)
			}
			before := len(s.Runners())

			ids := strings.NewReplacer("{a}", strconv.FormatInt(a, 10), "{b}", strconv.FormatInt(b, 10), "{d}", strconv.FormatInt(d, 10))
			got := call(t, tt.method, base+"/api/v3"+ids.Replace(tt.path), "token "+tok, nil)
			if got.status != tt.want {
				t.Fatalf("status = %d, want %d; body %s", got.status, tt.want, got.body)
			}
			switch {
			case tt.method == "DELETE":
				wantLeft := before
				if tt.want == http.StatusNoContent {
					wantLeft--
				}
				if n := len(s.Runners()); n != wantLeft {
					t.Errorf("%d runners left, want %d", n, wantLeft)
				}
			case tt.want == http.StatusOK && tt.wantTotal > 0:
				var list struct {
					TotalCount int `json:"total_count"`
					Runners    []struct{ Name string }
				}
				got.decode(t, &list)
				var names []string
				for _, r := range list.Runners {
					names = append(names, r.Name)
				}
				if diff := cmp.Diff(tt.wantNames, names); diff != "" {
					t.Errorf("runners (-want +got):\n%s", diff)
				}
				if list.TotalCount != tt.wantTotal {
					t.Errorf("total_count = %d, want %d", list.TotalCount, tt.wantTotal)
				}
			case tt.want == http.StatusOK:
				var r struct{ Name string }
				got.decode(t, &r)
				if diff := cmp.Diff(tt.wantNames, []string{r.Name}); diff != "" {
					t.Errorf("runner (-want +got):\n%s", diff)
				}
			}
		})
	}
}
