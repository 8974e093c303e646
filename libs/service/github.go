package service

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/secrets"
)

// GitHub is the GitHub App part of a service's config; embed it (provisioner, reaper, status).
type GitHub struct {
	// ServerURL is required: https://github.com or the GHES web URL.
	ServerURL string `env:"GITHUB_SERVER_URL, required"`
	// AppID is required.
	AppID int64 `env:"GITHUB_APP_ID, required"`
	// PrivateKeySecretARN is required: the secret holding the App's private key (PEM).
	PrivateKeySecretARN string `env:"PRIVATE_KEY_SECRET_ARN, required"`
	// CABundle is optional: extra PEM roots for a GHES with a private CA.
	CABundle string `env:"GITHUB_CA_BUNDLE"`
}

// Check is the part of a service's Validate that concerns the App.
func (g GitHub) Check() error {
	if _, err := githubapp.APIBaseURL(g.ServerURL); err != nil {
		return fmt.Errorf("GITHUB_SERVER_URL: %w", err)
	}
	return nil
}

// App returns the App client, its private key read from Secrets Manager and kept keyTTL, and the
// key's secret itself (status checks it). timeout bounds each GitHub call (0: the package's 10 s).
func (g GitHub) App(cfg aws.Config, keyTTL, timeout time.Duration) (*githubapp.App, secrets.Secret, error) {
	key := secrets.New(secretsmanager.NewFromConfig(cfg), keyTTL).Bind(g.PrivateKeySecretARN)
	app, err := githubapp.New(githubapp.Config{ServerURL: g.ServerURL, AppID: g.AppID, CABundle: []byte(g.CABundle), Timeout: timeout}, key.Current)
	return app, key, err
}
