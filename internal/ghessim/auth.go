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

// requireApp guards the routes GitHub serves to the app itself, authenticated by an app JWT.
func (s *Server) requireApp(next handlerFunc) handlerFunc {
	return func(r *http.Request) reply {
		raw, ok := credential(r, "bearer")
		if !ok {
			return errorReply(http.StatusUnauthorized, "A JSON web token could not be decoded")
		}
		if msg := s.checkAppJWT(raw); msg != "" {
			return errorReply(http.StatusUnauthorized, msg)
		}
		return next(r)
	}
}

// checkAppJWT applies GitHub's rules to an app JWT and returns GitHub's message for the first one
// broken, or "" when the JWT is good.
func (s *Server) checkAppJWT(raw string) string {
	claims := jwt.MapClaims{}
	// Claims are checked below against s.now, not by the library against the wall clock.
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if _, err := parser.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return s.opts.AppPublicKey, nil }); err != nil {
		return "A JSON web token could not be decoded"
	}
	if !issuedBy(claims["iss"], s.opts.AppID) {
		return "'Issuer' claim ('iss') must be an Integer"
	}
	now := s.now()
	iat, iatOK := unixSeconds(claims["iat"])
	if !iatOK || iat.After(now.Add(clockDrift)) {
		return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
	}
	exp, expOK := unixSeconds(claims["exp"])
	if !expOK || !exp.After(now) {
		return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	}
	if exp.Sub(iat) > maxJWTLife || exp.After(now.Add(maxJWTLife+clockDrift)) {
		return "'Expiration time' claim ('exp') is too far in the future"
	}
	return ""
}

// issuedBy reports whether iss names the app; GitHub accepts the id as a string or a number.
func issuedBy(iss any, appID int64) bool {
	switch v := iss.(type) {
	case string:
		return v == strconv.FormatInt(appID, 10)
	case float64:
		return v == float64(appID)
	}
	return false
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
