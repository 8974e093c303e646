package presets

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestStoreMoto (local world): fixtures are presets in moto's SSM, each under a name unique to this
// run (world.Name) so that no other test's parameter can collide. A preset written as the
// deployment writes it must come back parsed with the defaults applied; a configured preset whose
// parameter was never written must be ErrBroken, which proves the store recognises SSM's real
// ParameterNotFound.
func TestStoreMoto(t *testing.T) {
	t.Parallel()
	api := ssm.NewFromConfig(world.AWS(t))
	tests := []struct {
		name    string
		put     bool
		wantErr error
	}{
		{name: "written", put: true},
		{name: "never written", put: false, wantErr: ErrBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			name := strings.ToLower(world.Name(t, "preset"))
			doc := `{"name":"` + name + `","architecture":"arm64","labels":["gpu"],"launchTemplateId":"lt-0123456789abcdef0"}`
			if tt.put {
				_, err := api.PutParameter(ctx, &ssm.PutParameterInput{
					Name: aws.String(ParameterPrefix("test-stack") + name), Value: aws.String(doc), Type: types.ParameterTypeString,
				})
				if err != nil {
					t.Fatalf("put parameter: %v", err)
				}
			}
			var want Preset
			if tt.wantErr == nil {
				want = with(defaultArm64, func(p *Preset) { p.Name, p.Labels = name, []string{"gpu"} })
			}
			got, err := New(api, ParameterPrefix("test-stack"), []string{name}, time.Minute).Get(ctx, name)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Get(%q) error = %v, want %v", name, err, tt.wantErr)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Get(%q) (-want +got):\n%s", name, diff)
			}
		})
	}
}
