// Package secrets reads the GitHub App private key and the webhook secret from AWS Secrets
// Manager, and only from there: never from environment variables.
//
// Values are cached per container for a short TTL (a warm Lambda answers from memory; a rotated
// secret is picked up within the TTL) and registered with the logging redactor the moment they
// are read, so no log line can carry them. During a webhook-secret rotation both the current
// (AWSCURRENT) and the previous (AWSPREVIOUS) version are available; Refresh picks a rotation up
// before the TTL ends, both versions at once.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/spotrunner/spotrunner/libs/logging"
)

// ErrNotFound means the secret, or the asked version of it, does not exist: an operator has to
// create it (or it was never rotated, for the previous version).
var ErrNotFound = errors.New("secret not found")

// API is the part of the Secrets Manager client the store uses.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Version stages, as Secrets Manager names them.
const (
	current  = "AWSCURRENT"
	previous = "AWSPREVIOUS"
)

// Store is a read-through cache of secret values. Safe for concurrent use.
type Store struct {
	api API
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]entry
}

type cacheKey struct{ id, stage string }

type entry struct {
	value   []byte
	missing bool // a cached ErrNotFound, so a never-rotated secret is not asked for on every call
	fetched time.Time
	expires time.Time
}

// minRefresh bounds Refresh: at most one forced read per secret in this time, so a flood of
// badly signed requests cannot turn into a flood of Secrets Manager calls.
const minRefresh = 30 * time.Second

// New returns a store over api; ttl is how long a value is served from memory (e.g. 5 minutes).
func New(api API, ttl time.Duration) *Store {
	return &Store{api: api, ttl: ttl, now: time.Now, cache: map[cacheKey]entry{}}
}

// WithClock returns a store over the same API and TTL, with an empty cache, reading time from now
// (tests: the TTL and Refresh's 30 s bound are played without waiting).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := New(s.api, s.ttl)
	c.now = now
	return c
}

// Current returns the current value of the secret id (name or ARN).
func (s *Store) Current(ctx context.Context, id string) ([]byte, error) {
	return s.get(ctx, id, current)
}

// Previous returns the value the secret had before its last rotation; ok is false when it has
// never been rotated.
func (s *Store) Previous(ctx context.Context, id string) (value []byte, ok bool, err error) {
	v, err := s.get(ctx, id, previous)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

func (s *Store) get(ctx context.Context, id, stage string) ([]byte, error) {
	k := cacheKey{id, stage}
	s.mu.Lock()
	e, ok := s.cache[k]
	s.mu.Unlock()
	if ok && s.now().Before(e.expires) {
		if e.missing {
			return nil, fmt.Errorf("get secret %q (%s): %w", id, stage, ErrNotFound)
		}
		return e.value, nil
	}

	out, err := s.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(id),
		VersionStage: aws.String(stage),
	})
	var rnf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &rnf):
		s.put(k, entry{missing: true})
		return nil, fmt.Errorf("get secret %q (%s): %w", id, stage, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get secret %q (%s): %w", id, stage, err)
	}

	value := out.SecretBinary
	if out.SecretString != nil {
		value = []byte(*out.SecretString)
	}
	if len(value) == 0 {
		return nil, fmt.Errorf("get secret %q (%s): empty value: %w", id, stage, ErrNotFound)
	}
	logging.Redact(string(value))
	s.put(k, entry{value: value})
	return value, nil
}

// Refresh reads the current value again, past the cache, unless it was read less than 30 s ago;
// changed reports a new value. A webhook signed with a secret rotated a moment ago is checked
// against the new value at once instead of failing until the cache expires.
//
// A new current value means a rotation, which also moved the previous stage: the cached previous
// entry (a cached miss before the first rotation, or the value before last) is dropped so the
// next read finds the value just rotated out, and deliveries still signed with it keep passing.
func (s *Store) Refresh(ctx context.Context, id string) (changed bool, err error) {
	k := cacheKey{id, current}
	s.mu.Lock()
	old, ok := s.cache[k]
	if ok && s.now().Sub(old.fetched) < minRefresh {
		s.mu.Unlock()
		return false, nil
	}
	delete(s.cache, k)
	s.mu.Unlock()
	v, err := s.get(ctx, id, current)
	if err != nil {
		return false, err
	}
	changed = !ok || string(v) != string(old.value)
	if changed {
		s.mu.Lock()
		delete(s.cache, cacheKey{id, previous})
		s.mu.Unlock()
	}
	return changed, nil
}

func (s *Store) put(k cacheKey, e entry) {
	e.fetched = s.now()
	e.expires = s.now().Add(s.ttl)
	s.mu.Lock()
	s.cache[k] = e
	s.mu.Unlock()
}

// Secret is one secret of a store, bound to its id, for handlers that only ever need that one.
type Secret struct {
	store *Store
	id    string
}

// Bind returns the secret id of s.
func (s *Store) Bind(id string) Secret { return Secret{store: s, id: id} }

// Current returns the secret's current value.
func (b Secret) Current(ctx context.Context) ([]byte, error) { return b.store.Current(ctx, b.id) }

// Previous returns the secret's value before its last rotation, if it was ever rotated.
func (b Secret) Previous(ctx context.Context) ([]byte, bool, error) {
	return b.store.Previous(ctx, b.id)
}

// Refresh reads the current value again past the cache (at most every 30 s).
func (b Secret) Refresh(ctx context.Context) (bool, error) { return b.store.Refresh(ctx, b.id) }
