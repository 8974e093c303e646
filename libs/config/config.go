// Package config loads a service's typed configuration from the environment with go-envconfig,
// once, in main. A missing or malformed variable stops the start with an error that names it;
// a config type may add its own checks by implementing Validator.
//
// Nothing below main reads the environment: handlers get the typed config as a field.
package config

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Validator is implemented by configs with rules that struct tags cannot say (ranges, one of two
// fields, URL shapes). Validate runs after every variable has been read.
type Validator interface {
	Validate() error
}

// Load fills cfg (a pointer to a struct with `env` tags) from the process environment.
func Load(ctx context.Context, cfg any) error {
	return LoadFrom(ctx, cfg, envconfig.OsLookuper())
}

// LoadFrom is Load with the variables taken from l; tests pass envconfig.MapLookuper.
func LoadFrom(ctx context.Context, cfg any, l envconfig.Lookuper) error {
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: l}); err != nil {
		return fmt.Errorf("load config: %s%w", variableOf(cfg, err), err)
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	return nil
}

// variableOf names the environment variable behind err. go-envconfig names the struct field of a
// malformed value ("Timeout: time: invalid duration"); an operator reading a failed start needs
// the variable ("TIMEOUT").
func variableOf(cfg any, err error) string {
	field, _, ok := strings.Cut(err.Error(), ":")
	if !ok {
		return ""
	}
	t := reflect.TypeOf(cfg)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	f, ok := t.FieldByName(field)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	if name == "" {
		return ""
	}
	return "variable " + name + ": "
}
