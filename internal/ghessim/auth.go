package ghessim

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// GitHub's limits on app JWTs: at most ten minutes of life, and a minute of clock drift forgiven
// on iat (its docs ask apps to back-date iat by 60 s for that reason).
const (
	maxJWTLife = 10 * time.Minute
	clockDrift = time.Minute
	tokenLife  = time.Hour
)

// tokenGrant is an installation access token the server issued.
type tokenGrant struct {
	installationID int64
	expiresAt      time.Time
}

// JWTs returns every app JWT received, in order of arrival, valid or not.
func (s *Server) JWTs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.jwts...)
}

func (s *Server) recordJWT(r *http.Request) {
	raw, ok := credential(r, "bearer")
	if !ok || strings.Count(raw, ".") != 2 { // installation tokens (ghs_...) are not JWTs
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwts = append(s.jwts, raw)
}

// credential returns the credential of an Authorization header using one of schemes.
func credential(r *http.Request, schemes ...string) (string, bool) {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || cred == "" {
		return "", false
	}
	for _, sc := range schemes {
		if strings.EqualFold(scheme, sc) {
			return cred, true
		}
	}
	return "", false
}

// GitHub's answers to the app JWTs it refuses, as clients have quoted them:
//   - 401 "A JSON web token could not be decoded": not a JWT, or not signed by a key of the app
//     that iss names. GitHub staff reproduced it with a valid app id and another app's key
//     (actions/create-github-app-token#153); octokit's maintainers got it for a valid key with
//     the id of another app (octokit/auth-app.js#375); go-github#1463 quotes it for
//     GET /api/v3/app on GHES.
//   - 401 "'Issuer' claim ('iss') must be an Integer": an iss that is not an app id
//     (actions/create-github-app-token#386).
//   - 404 "Integration not found": an iss that names no app (GHES 2.13 answering 404 in
//     issc29/probot-prevent-public-repos#4; 404 on api.github.com in probot/probot#1655).
//
// The order follows from GitHub having to find the app before it can know which keys verify
// the signature: decode, find the app named by iss, verify, then check the times.
const (
	msgUndecodable    = "A JSON web token could not be decoded"
	msgIssNotInteger  = "'Issuer' claim ('iss') must be an Integer"
	msgAppNotFound    = "Integration not found"
	msgIatNotPast     = "'Issued at' claim ('iat') must be an Integer representing a time in the past"
	msgExpNotFuture   = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	msgExpTooFarAhead = "'Expiration time' claim ('exp') is too far in the future"
)

// requireApp guards the routes GitHub serves to the app itself, authenticated by an app JWT.
func (s *Server) requireApp(next handlerFunc) handlerFunc {
	return func(r *http.Request) reply {
		raw, ok := credential(r, "bearer")
		if !ok {
			return errorReply(http.StatusUnauthorized, msgUndecodable)
		}
		if refusal, ok := s.checkAppJWT(raw); !ok {
			return refusal
		}
		return next(r)
	}
}

// checkAppJWT applies GitHub's rules to an app JWT; when one is broken it returns GitHub's answer
// and false.
func (s *Server) checkAppJWT(raw string) (reply, bool) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		return errorReply(http.StatusUnauthorized, msgUndecodable), false
	}
	iss, ok := appIDClaim(claims["iss"])
	if !ok {
		return errorReply(http.StatusUnauthorized, msgIssNotInteger), false
	}
	if iss != s.opts.AppID { // the simulator knows one app
		return errorReply(http.StatusNotFound, msgAppNotFound), false
	}
	// Claims are checked below against s.now, not by the library against the wall clock.
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if _, err := parser.ParseWithClaims(raw, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return s.opts.AppPublicKey, nil }); err != nil {
		return errorReply(http.StatusUnauthorized, msgUndecodable), false
	}
	now := s.now()
	iat, iatOK := unixSeconds(claims["iat"])
	if !iatOK || iat.After(now.Add(clockDrift)) {
		return errorReply(http.StatusUnauthorized, msgIatNotPast), false
	}
	exp, expOK := unixSeconds(claims["exp"])
	if !expOK || !exp.After(now) {
		return errorReply(http.StatusUnauthorized, msgExpNotFuture), false
	}
	if exp.Sub(iat) > maxJWTLife || exp.After(now.Add(maxJWTLife+clockDrift)) {
		return errorReply(http.StatusUnauthorized, msgExpTooFarAhead), false
	}
	return reply{}, true
}

// appIDClaim reads iss as an app id; GitHub accepts the id as a string or a number.
func appIDClaim(iss any) (int64, bool) {
	switch v := iss.(type) {
	case string:
		id, err := strconv.ParseInt(v, 10, 64)
		return id, err == nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), true
		}
	}
	return 0, false
}

// unixSeconds reads a NumericDate claim. GitHub rejects fractional timestamps, so they fail here.
func unixSeconds(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// requireInstallation guards the routes an installation token opens: the token must be one the
// server issued, unexpired, for an installation on the owner in the path (an organization, for
// /orgs routes); the repository, when the path names one, must exist. GitHub hides what a token
// cannot see behind 404.
func (s *Server) requireInstallation(next handlerFunc) handlerFunc {
	return func(r *http.Request) reply {
		tok, ok := credential(r, "token", "bearer")
		if !ok {
			return errorReply(http.StatusUnauthorized, "Requires authentication")
		}
		org, owner, repoName := r.PathValue("org"), r.PathValue("owner"), r.PathValue("repo")
		if org != "" {
			owner = org
		}
		s.mu.Lock()
		g, found := s.tokens[tok]
		valid := found && s.now().Before(g.expiresAt)
		visible := false
		if inst := s.installations[g.installationID]; valid && inst != nil {
			a := inst.account
			visible = strings.EqualFold(a.login, owner) &&
				(org == "" || a.typ == "Organization") &&
				(repoName == "" || s.repos[key(owner, repoName)] != nil)
		}
		s.mu.Unlock()
		if !valid {
			return errorReply(http.StatusUnauthorized, "Bad credentials")
		}
		if !visible {
			return notFound()
		}
		return next(r)
	}
}

// issueToken returns a new installation token; the caller holds s.mu.
func (s *Server) issueToken(installationID int64) (string, time.Time) {
	tok := "ghs_" + randomAlphanumeric(36)
	// GitHub's expires_at has whole seconds.
	exp := s.now().Add(tokenLife).UTC().Truncate(time.Second)
	s.tokens[tok] = tokenGrant{installationID: installationID, expiresAt: exp}
	return tok, exp
}
