// Package githubapp is Spot Runner's GitHub App client, for github.com and GHES alike.
//
// It signs app JWTs (each with a unique jti, so concurrent Lambdas never send identical tokens),
// exchanges them for installation tokens cached per installation until a minute before they
// expire (ghinstallation), talks to https://api.github.com or https://HOST/api/v3, and trusts an
// optional extra CA bundle for a GHES behind a private CA. The private key is fetched lazily from
// its source (Secrets Manager), so a missing key is an error of the call that needed it, which
// the caller can classify, not a crash at start.
//
// Callers speak this package's types; go-github types stay inside it.
package githubapp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/golang-jwt/jwt/v4"
	"github.com/google/go-github/v84/github"
)

// KeySource returns the App's private key (PEM), e.g. secrets.Store.Current for the key's ARN.
type KeySource func(ctx context.Context) ([]byte, error)

// Config describes the App and the GitHub it lives on.
type Config struct {
	// ServerURL is required: https://github.com or the GHES web URL (https://ghes.example.com).
	ServerURL string
	// AppID is required.
	AppID int64
	// CABundle is optional: extra PEM roots for a GHES with a private CA (the system roots stay).
	CABundle []byte
	// Timeout bounds each HTTP call; optional, default 10 s.
	Timeout time.Duration
}

// App is a GitHub App client. Safe for concurrent use; build one per container.
type App struct {
	cfg     Config
	apiBase string
	key     KeySource
	http    http.RoundTripper

	mu       sync.Mutex
	sign     ghinstallation.Signer // nil until the key has been loaded
	installs map[int64]installation
}

// installation is one installation's token transport and client.
type installation struct {
	tokens *ghinstallation.Transport
	client *github.Client
}

// New checks cfg and returns an App; it makes no network call.
func New(cfg Config, key KeySource) (*App, error) {
	if cfg.AppID <= 0 {
		return nil, errors.New("github app: AppID must be positive")
	}
	base, err := APIBaseURL(cfg.ServerURL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(cfg.CABundle) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CABundle) {
			return nil, errors.New("github app: CA bundle holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &App{cfg: cfg, apiBase: base, key: key, http: tr, installs: map[int64]installation{}}, nil
}

// APIBaseURL maps a GitHub web URL to its REST API base URL (with a trailing slash):
// github.com → https://api.github.com/, any other host → scheme://host/api/v3/ (GHES).
func APIBaseURL(serverURL string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(serverURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("github app: server URL %q: want https://HOST", serverURL)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("github app: server URL %q: want no path", serverURL)
	}
	if strings.EqualFold(u.Host, "github.com") || strings.EqualFold(u.Host, "api.github.com") {
		return "https://api.github.com/", nil
	}
	return u.Scheme + "://" + u.Host + "/api/v3/", nil
}

// Host returns the host name of a GitHub web URL ("github.com", "ghes.example.com"), the name
// jobs are keyed by. It assumes serverURL passed APIBaseURL.
func Host(serverURL string) string {
	u, err := url.Parse(strings.TrimSpace(serverURL))
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// signer loads the private key on first use and returns the app JWT signer.
func (a *App) signer(ctx context.Context) (ghinstallation.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sign != nil {
		return a.sign, nil
	}
	pemKey, err := a.key(ctx)
	if err != nil {
		return nil, fmt.Errorf("load github app private key: %w", err)
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(pemKey)
	if err != nil {
		// The parse error can quote key material; keep it out of the message.
		return nil, fmt.Errorf("load github app private key: not an RSA private key in PEM: %w", ErrBadPrivateKey)
	}
	a.sign = uniqueSigner{ghinstallation.NewRSASigner(jwt.SigningMethodRS256, key)}
	return a.sign, nil
}

// ErrBadPrivateKey means the configured key is not a usable RSA private key (operator-fixable).
var ErrBadPrivateKey = errors.New("bad github app private key")

// installation returns the client of one installation; its token is cached by ghinstallation
// until a minute before expiry, and the client itself for the container's life. Each
// installation gets its own JWT transport: ghinstallation writes to the one it refreshes through,
// so a shared one races between installations.
func (a *App) installation(ctx context.Context, id int64) (installation, error) {
	sign, err := a.signer(ctx)
	if err != nil {
		return installation{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if in, ok := a.installs[id]; ok {
		return in, nil
	}
	atr, err := ghinstallation.NewAppsTransportWithOptions(a.http, a.cfg.AppID, ghinstallation.WithSigner(sign))
	if err != nil {
		return installation{}, fmt.Errorf("github app transport: %w", err)
	}
	atr.BaseURL = strings.TrimSuffix(a.apiBase, "/")
	itr := ghinstallation.NewFromAppsTransport(atr, id)
	itr.BaseURL = atr.BaseURL
	c, err := a.client(itr)
	if err != nil {
		return installation{}, err
	}
	in := installation{tokens: itr, client: c}
	a.installs[id] = in
	return in, nil
}

// Check makes sure the App can act for installation id: the key loads and an installation token
// can be had (cached afterwards). Provisioning calls it before launching anything, so an App that
// is not installed costs no instance.
func (a *App) Check(ctx context.Context, id int64) error {
	in, err := a.installation(ctx, id)
	if err != nil {
		return err
	}
	if _, err := in.tokens.Token(ctx); err != nil {
		return fmt.Errorf("installation %d token: %w", id, classify(err))
	}
	return nil
}

// AppInfo is the App as GitHub describes it to the App itself.
type AppInfo struct {
	ID   int64
	Slug string
	Name string
}

// Describe asks GitHub who the App is (GET /app), authenticated by the app JWT alone: the one call
// that proves the server is reachable and trusted and that the key and App id belong together,
// whatever the installations. Failures wrap ErrBadPrivateKey or the key source's error, or
// ErrUnauthorized (wrong App id, or a key not this App's), or, for no answer, ErrTLS, ErrTimeout
// or ErrUnreachable (each an ErrUnavailable), or classify's sentinels.
func (a *App) Describe(ctx context.Context) (AppInfo, error) {
	c, err := a.asApp(ctx)
	if err != nil {
		return AppInfo{}, err
	}
	app, _, err := c.Apps.Get(ctx, "")
	if err != nil {
		return AppInfo{}, fmt.Errorf("get github app %d: %w", a.cfg.AppID, classifyAppJWT(err))
	}
	if app.GetID() == 0 {
		return AppInfo{}, fmt.Errorf("get github app %d: answer names no app: %w", a.cfg.AppID, ErrUnavailable)
	}
	return AppInfo{ID: app.GetID(), Slug: app.GetSlug(), Name: app.GetName()}, nil
}

// asApp returns a client authenticated as the App itself (a fresh app JWT on every request), for
// the /app routes; installation routes go through installation.
func (a *App) asApp(ctx context.Context) (*github.Client, error) {
	sign, err := a.signer(ctx)
	if err != nil {
		return nil, err
	}
	atr, err := ghinstallation.NewAppsTransportWithOptions(a.http, a.cfg.AppID, ghinstallation.WithSigner(sign))
	if err != nil {
		return nil, fmt.Errorf("github app transport: %w", err)
	}
	return a.client(atr)
}

func (a *App) client(rt http.RoundTripper) (*github.Client, error) {
	c := github.NewClient(&http.Client{Transport: rt, Timeout: a.cfg.Timeout})
	if a.apiBase == "https://api.github.com/" {
		return c, nil
	}
	c, err := c.WithEnterpriseURLs(a.apiBase, a.apiBase)
	if err != nil {
		return nil, fmt.Errorf("github enterprise url %q: %w", a.apiBase, err)
	}
	return c, nil
}

// uniqueSigner adds a random jti to every app JWT. ghinstallation truncates iat to the second, so
// two Lambdas signing in the same second would otherwise send byte-identical JWTs.
type uniqueSigner struct{ inner ghinstallation.Signer }

func (s uniqueSigner) Sign(claims jwt.Claims) (string, error) {
	if rc, ok := claims.(*jwt.RegisteredClaims); ok {
		c := *rc
		c.ID = rand.Text()
		claims = &c
	}
	return s.inner.Sign(claims)
}
