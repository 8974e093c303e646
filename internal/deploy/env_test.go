package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/internal/world"
)

// envTag finds go-envconfig tags: `env:"NAME, required"` (name, then options).
var envTag = regexp.MustCompile("env:\"([A-Z0-9_]+)((?:,[^\"]*)?)\"")

// sharedConfigs are the embeddable configs of libs/service and the file that declares each.
var sharedConfigs = map[string]string{"service.Runtime": "libs/service/service.go", "service.GitHub": "libs/service/github.go"}

// variablesOf reads the environment variables a service's Config declares (its main.go and the
// shared configs it embeds): every name, and the required ones.
func variablesOf(t *testing.T, service string) (all, required []string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(world.Root(), "services", service, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{string(src)}
	for embed, file := range sharedConfigs {
		if regexp.MustCompile(`(?m)^\t` + regexp.QuoteMeta(embed) + `$`).Match(src) {
			b, err := os.ReadFile(filepath.Join(world.Root(), file))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, string(b))
		}
	}
	for _, f := range files {
		for _, m := range envTag.FindAllStringSubmatch(f, -1) {
			all = append(all, m[1])
			if strings.Contains(m[2], "required") {
				required = append(required, m[1])
			}
		}
	}
	slices.Sort(all)
	slices.Sort(required)
	return slices.Compact(all), slices.Compact(required)
}

// setByLambda are variables Lambda itself sets in every function's environment.
var setByLambda = map[string]bool{"AWS_REGION": true}

// TestFunctionEnvironments: fixtures are template.yaml and each service's Config. Every variable
// a function's Config requires is set on its function (or by Lambda), and the template sets no
// variable its Config does not read (a typo there would silently fall back to a default).
func TestFunctionEnvironments(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(world.Root(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Globals struct {
			Function struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Function"`
		} `yaml:"Globals"`
		Resources map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("parse template.yaml: %v", err)
	}
	services, err := filepath.Glob(filepath.Join(world.Root(), "services", "*", "main.go"))
	if err != nil || len(services) == 0 {
		t.Fatalf("no services: %v", err)
	}
	functions := map[string]bool{}
	for id, r := range tmpl.Resources {
		if r.Type == "AWS::Serverless::Function" {
			functions[id] = true
		}
	}
	for _, path := range services {
		service := filepath.Base(filepath.Dir(path))
		t.Run(service, func(t *testing.T) {
			t.Parallel()
			var fn string
			for id := range functions {
				if strings.EqualFold(strings.TrimSuffix(id, "Function"), service) {
					fn = id
				}
			}
			if fn == "" {
				t.Fatalf("no AWS::Serverless::Function for services/%s in template.yaml", service)
			}
			set := map[string]bool{}
			for k := range tmpl.Globals.Function.Environment.Variables {
				set[k] = true
			}
			for k := range tmpl.Resources[fn].Properties.Environment.Variables {
				set[k] = true
			}
			all, required := variablesOf(t, service)
			var missing, unread []string
			for _, v := range required {
				if !set[v] && !setByLambda[v] {
					missing = append(missing, v)
				}
			}
			for v := range set {
				if !slices.Contains(all, v) {
					unread = append(unread, v)
				}
			}
			slices.Sort(unread)
			if diff := cmp.Diff([]string(nil), missing); diff != "" {
				t.Errorf("%s: required variables not set (-want +got):\n%s", fn, diff)
			}
			if diff := cmp.Diff([]string(nil), unread); diff != "" {
				t.Errorf("%s: variables set that services/%s does not read (-want +got):\n%s", fn, service, diff)
			}
		})
	}
}
