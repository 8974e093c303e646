package ghessim

import (
	"maps"
	"net/http"
)

// appJSON is GitHub's integration, as GET /app answers it to the app itself (which alone sees
// installations_count).
type appJSON struct {
	ID                 int64             `json:"id"`
	Slug               string            `json:"slug"`
	NodeID             string            `json:"node_id"`
	ClientID           string            `json:"client_id"`
	Owner              map[string]any    `json:"owner"`
	Name               string            `json:"name"`
	Description        *string           `json:"description"`
	ExternalURL        string            `json:"external_url"`
	HTMLURL            string            `json:"html_url"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
	Permissions        map[string]string `json:"permissions"`
	Events             []string          `json:"events"`
	InstallationsCount int               `json:"installations_count"`
}

// getApp answers GET /app, the app the JWT authenticates.
func (s *Server) getApp(*http.Request) reply {
	s.mu.Lock()
	installs := len(s.installations)
	s.mu.Unlock()
	return okReply(appJSON{
		ID:       s.opts.AppID,
		Slug:     s.opts.AppSlug,
		NodeID:   nodeID("Integration", s.opts.AppID),
		ClientID: s.appClientID,
		Owner:    s.siteUserJSON(),
		Name:     s.opts.AppName,
		// Description stays null, as for an app registered without one. The homepage URL is
		// required at registration; the owner's profile will do.
		ExternalURL: s.webURL() + "/" + siteUser.login,
		// GHES serves an app's public page at /github-apps/SLUG (github.com at /apps/SLUG).
		HTMLURL:            s.webURL() + "/github-apps/" + s.opts.AppSlug,
		CreatedAt:          timestamp(s.appCreatedAt),
		UpdatedAt:          timestamp(s.appCreatedAt),
		Permissions:        maps.Clone(appPermissions),
		Events:             []string{"workflow_job"},
		InstallationsCount: installs,
	})
}
