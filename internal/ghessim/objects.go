package ghessim

import (
	"strconv"
	"time"
)

// The GitHub objects that several routes and webhooks embed: simple-user, the webhook
// organization and repository. They are maps because GitHub's shapes are mostly URL templates
// that follow from the login or full name, generated in loops below.

func (s *Server) webURL() string { return "https://" + s.opts.Host }
func (s *Server) apiURL() string { return s.webURL() + apiPrefix }

// timestamp formats t the way GitHub does (UTC, whole seconds).
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// userJSON is GitHub's simple-user for an account (organizations have that shape too).
func (s *Server) userJSON(a *account) map[string]any {
	u := s.apiURL() + "/users/" + a.login
	obj := map[string]any{
		"login":       a.login,
		"id":          a.id,
		"node_id":     nodeID(a.typ, a.id),
		"avatar_url":  s.webURL() + "/avatars/u/" + strconv.FormatInt(a.id, 10),
		"gravatar_id": "",
		"url":         u,
		"html_url":    s.webURL() + "/" + a.login,
		"type":        a.typ,
		"site_admin":  false,
	}
	for field, suffix := range map[string]string{
		"followers_url":       "/followers",
		"following_url":       "/following{/other_user}",
		"gists_url":           "/gists{/gist_id}",
		"starred_url":         "/starred{/owner}{/repo}",
		"subscriptions_url":   "/subscriptions",
		"organizations_url":   "/orgs",
		"repos_url":           "/repos",
		"events_url":          "/events{/privacy}",
		"received_events_url": "/received_events",
	} {
		obj[field] = u + suffix
	}
	return obj
}

// siteUser is a fixed user of the instance: the sender of events and the owner of the app, as
// tests do not care who.
var siteUser = account{id: 1, login: "monalisa", typ: "User"}

func (s *Server) siteUserJSON() map[string]any {
	u := siteUser
	return s.userJSON(&u)
}

// orgJSON is GitHub's organization-simple-webhooks.
func (s *Server) orgJSON(a *account) map[string]any {
	u := s.apiURL() + "/orgs/" + a.login
	return map[string]any{
		"login":              a.login,
		"id":                 a.id,
		"node_id":            nodeID(a.typ, a.id),
		"url":                u,
		"repos_url":          u + "/repos",
		"events_url":         u + "/events",
		"hooks_url":          u + "/hooks",
		"issues_url":         u + "/issues",
		"members_url":        u + "/members{/member}",
		"public_members_url": u + "/public_members{/member}",
		"avatar_url":         s.webURL() + "/avatars/u/" + strconv.FormatInt(a.id, 10),
		"description":        nil,
	}
}

// repoJSON is GitHub's repository-webhooks, the repository of webhook payloads.
func (s *Server) repoJSON(r *repo) map[string]any {
	u := s.apiURL() + "/repos/" + r.fullName()
	html := s.webURL() + "/" + r.fullName()
	visibility := "public"
	if r.private {
		visibility = "private"
	}
	// Tests do not age repositories; one fixed date keeps payloads comparable.
	created := "2024-01-01T00:00:00Z"
	obj := map[string]any{
		"id":                r.id,
		"node_id":           nodeID("Repository", r.id),
		"name":              r.name,
		"full_name":         r.fullName(),
		"private":           r.private,
		"visibility":        visibility,
		"owner":             s.userJSON(r.owner),
		"html_url":          html,
		"description":       nil,
		"fork":              false,
		"url":               u,
		"created_at":        created,
		"updated_at":        created,
		"pushed_at":         created,
		"git_url":           "git://" + s.opts.Host + "/" + r.fullName() + ".git",
		"ssh_url":           "git@" + s.opts.Host + ":" + r.fullName() + ".git",
		"clone_url":         html + ".git",
		"svn_url":           html,
		"homepage":          nil,
		"size":              0,
		"stargazers_count":  0,
		"watchers_count":    0,
		"language":          nil,
		"has_issues":        true,
		"has_projects":      true,
		"has_downloads":     true,
		"has_wiki":          true,
		"has_pages":         false,
		"forks_count":       0,
		"mirror_url":        nil,
		"archived":          false,
		"disabled":          false,
		"open_issues_count": 0,
		"license":           nil,
		"forks":             0,
		"open_issues":       0,
		"watchers":          0,
		"default_branch":    "main",
		"is_template":       false,
		"topics":            []string{},
	}
	for field, suffix := range map[string]string{
		"forks_url":         "/forks",
		"keys_url":          "/keys{/key_id}",
		"collaborators_url": "/collaborators{/collaborator}",
		"teams_url":         "/teams",
		"hooks_url":         "/hooks",
		"issue_events_url":  "/issues/events{/number}",
		"events_url":        "/events",
		"assignees_url":     "/assignees{/user}",
		"branches_url":      "/branches{/branch}",
		"tags_url":          "/tags",
		"blobs_url":         "/git/blobs{/sha}",
		"git_tags_url":      "/git/tags{/sha}",
		"git_refs_url":      "/git/refs{/sha}",
		"trees_url":         "/git/trees{/sha}",
		"statuses_url":      "/statuses/{sha}",
		"languages_url":     "/languages",
		"stargazers_url":    "/stargazers",
		"contributors_url":  "/contributors",
		"subscribers_url":   "/subscribers",
		"subscription_url":  "/subscription",
		"commits_url":       "/commits{/sha}",
		"git_commits_url":   "/git/commits{/sha}",
		"comments_url":      "/comments{/number}",
		"issue_comment_url": "/issues/comments{/number}",
		"contents_url":      "/contents/{+path}",
		"compare_url":       "/compare/{base}...{head}",
		"merges_url":        "/merges",
		"archive_url":       "/{archive_format}{/ref}",
		"downloads_url":     "/downloads",
		"issues_url":        "/issues{/number}",
		"pulls_url":         "/pulls{/number}",
		"milestones_url":    "/milestones{/number}",
		"notifications_url": "/notifications{?since,all,participating}",
		"labels_url":        "/labels{/name}",
		"releases_url":      "/releases{/id}",
		"deployments_url":   "/deployments",
	} {
		obj[field] = u + suffix
	}
	return obj
}
