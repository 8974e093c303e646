package ghessim

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
)

// appPermissions are what the app was granted at installation: what Spot Runner needs.
var appPermissions = map[string]string{
	"actions":                          "read",
	"administration":                   "write",
	"metadata":                         "read",
	"organization_self_hosted_runners": "write",
}

// installationJSON is GitHub's installation.
type installationJSON struct {
	ID                  int64             `json:"id"`
	Account             map[string]any    `json:"account"`
	RepositorySelection string            `json:"repository_selection"`
	AccessTokensURL     string            `json:"access_tokens_url"`
	RepositoriesURL     string            `json:"repositories_url"`
	HTMLURL             string            `json:"html_url"`
	AppID               int64             `json:"app_id"`
	AppSlug             string            `json:"app_slug"`
	TargetID            int64             `json:"target_id"`
	TargetType          string            `json:"target_type"`
	Permissions         map[string]string `json:"permissions"`
	Events              []string          `json:"events"`
	CreatedAt           string            `json:"created_at"`
	UpdatedAt           string            `json:"updated_at"`
	SingleFileName      *string           `json:"single_file_name"`
	SuspendedBy         map[string]any    `json:"suspended_by"`
	SuspendedAt         *string           `json:"suspended_at"`
}

// installationJSON renders inst; the caller holds s.mu.
func (s *Server) installationJSON(inst *installation) installationJSON {
	a := inst.account
	settings := s.webURL() + "/settings/installations/" + strconv.FormatInt(inst.id, 10)
	if a.typ == "Organization" {
		settings = s.webURL() + "/organizations/" + a.login + "/settings/installations/" + strconv.FormatInt(inst.id, 10)
	}
	return installationJSON{
		ID:                  inst.id,
		Account:             s.userJSON(a),
		RepositorySelection: "all",
		AccessTokensURL:     s.apiURL() + "/app/installations/" + strconv.FormatInt(inst.id, 10) + "/access_tokens",
		RepositoriesURL:     s.apiURL() + "/installation/repositories",
		HTMLURL:             settings,
		AppID:               s.opts.AppID,
		AppSlug:             s.opts.AppSlug,
		TargetID:            a.id,
		TargetType:          a.typ,
		Permissions:         maps.Clone(appPermissions),
		Events:              []string{"workflow_job"},
		CreatedAt:           timestamp(inst.createdAt),
		UpdatedAt:           timestamp(inst.createdAt),
	}
}

type accessTokenRequest struct {
	Repositories  []string          `json:"repositories"`
	RepositoryIDs []int64           `json:"repository_ids"`
	Permissions   map[string]string `json:"permissions"`
}

type accessTokenJSON struct {
	Token               string            `json:"token"`
	ExpiresAt           string            `json:"expires_at"`
	Permissions         map[string]string `json:"permissions"`
	RepositorySelection string            `json:"repository_selection"`
}

func (s *Server) createAccessToken(r *http.Request) reply {
	id, ok := pathID(r, "installation_id")
	if !ok {
		return notFound()
	}
	var req accessTokenRequest
	// The body is optional; ghinstallation sends "null" when it asks for nothing in particular.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return errorReply(http.StatusBadRequest, "Problems parsing JSON")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return errorReply(http.StatusBadRequest, "Problems parsing JSON")
		}
	}
	if len(req.Repositories) > 0 || len(req.RepositoryIDs) > 0 {
		// Say so rather than issue a token wider than the one asked for.
		return unprocessable("ghessim does not scope installation tokens to repositories")
	}
	perms := maps.Clone(appPermissions)
	if req.Permissions != nil {
		perms = req.Permissions // GitHub narrows the token to what was asked
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.installations[id] == nil {
		return notFound()
	}
	tok, exp := s.issueToken(id)
	return reply{status: http.StatusCreated, body: accessTokenJSON{
		Token:               tok,
		ExpiresAt:           timestamp(exp),
		Permissions:         perms,
		RepositorySelection: "all",
	}}
}

func (s *Server) getInstallation(r *http.Request) reply {
	id, ok := pathID(r, "installation_id")
	if !ok {
		return notFound()
	}
	return s.installationWhere(func(inst *installation) bool { return inst.id == id })
}

func (s *Server) getOrgInstallation(r *http.Request) reply {
	org := r.PathValue("org")
	return s.installationWhere(func(inst *installation) bool {
		return inst.account.typ == "Organization" && strings.EqualFold(inst.account.login, org)
	})
}

func (s *Server) getRepoInstallation(r *http.Request) reply {
	owner, name := r.PathValue("owner"), r.PathValue("repo")
	s.mu.Lock()
	known := s.repos[key(owner, name)] != nil
	s.mu.Unlock()
	if !known {
		return notFound()
	}
	return s.installationWhere(func(inst *installation) bool { return strings.EqualFold(inst.account.login, owner) })
}

func (s *Server) getUserInstallation(r *http.Request) reply {
	login := r.PathValue("username")
	return s.installationWhere(func(inst *installation) bool { return strings.EqualFold(inst.account.login, login) })
}

// installationWhere answers the installation that match picks, or 404.
func (s *Server) installationWhere(match func(*installation) bool) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inst := range s.installations {
		if match(inst) {
			return okReply(s.installationJSON(inst))
		}
	}
	return notFound()
}
