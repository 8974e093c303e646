package instance

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v4"
)

var update = flag.Bool("update", false, "rewrite the files embedded in sam/image.yaml and testdata/image-version.golden")

// maxComponentData is Image Builder's limit on a component document (CreateComponent's data).
const maxComponentData = 16000

// TestEmbeddedFiles reads sam/image.yaml's BootstrapComponent and ServiceComponent and checks
// that the heredocs they write to /usr/local/sbin/spotrunner-bootstrap and
// /etc/systemd/system/spotrunner.service are byte for byte instance/bootstrap.sh and
// instance/spotrunner.service, so the image can never drift from the tested files. With -update it rewrites the heredocs from the files. Not
// parallel: -update rewrites the template that the other tests read.
func TestEmbeddedFiles(t *testing.T) {
	tests := []struct {
		name, file, marker, component, step string
	}{
		{name: "bootstrap", file: "bootstrap.sh", marker: "SPOTRUNNER_BOOTSTRAP_EOF", component: "BootstrapComponent", step: "InstallBootstrap"},
		{name: "unit", file: "spotrunner.service", marker: "SPOTRUNNER_UNIT_EOF", component: "ServiceComponent", step: "InstallUnit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			want := string(raw)
			if strings.Contains(want, "{{") {
				t.Errorf("%s contains {{, which Image Builder would take for a component variable", tc.file)
			}
			if strings.Contains("\n"+want, "\n"+tc.marker+"\n") {
				t.Errorf("%s contains a line %s, which would end the heredoc early", tc.file, tc.marker)
			}
			if *update {
				tmpl, err := os.ReadFile(imageTemplatePath())
				if err != nil {
					t.Fatal(err)
				}
				out, err := rewriteHeredoc(string(tmpl), tc.marker, want)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(imageTemplatePath(), []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := heredoc(stepScript(t, tc.component, "build", tc.step), tc.marker)
			if !ok {
				t.Fatalf("step %s writes no <<'%s' heredoc", tc.step, tc.marker)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sam/image.yaml's copy of %s differs (-want +got); run go test ./instance -run TestEmbeddedFiles -update:\n%s", tc.file, diff)
			}
		})
	}
}

// heredoc returns the body of the quoted heredoc <<'marker' in script.
func heredoc(script, marker string) (string, bool) {
	lines := strings.Split(script, "\n")
	for i, l := range lines {
		if !strings.Contains(l, "<<'"+marker+"'") {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == marker {
				if j == i+1 {
					return "", true
				}
				return strings.Join(lines[i+1:j], "\n") + "\n", true
			}
		}
	}
	return "", false
}

// rewriteHeredoc replaces the body of the heredoc <<'marker' in the template text with body,
// indented like the line that opens it.
func rewriteHeredoc(tmpl, marker, body string) (string, error) {
	lines := strings.Split(tmpl, "\n")
	start := -1
	for i, l := range lines {
		if strings.Contains(l, "<<'"+marker+"'") {
			start = i
			break
		}
	}
	if start < 0 {
		return "", fmt.Errorf("no <<'%s' in the template", marker)
	}
	indent := lines[start][:len(lines[start])-len(strings.TrimLeft(lines[start], " "))]
	end := -1
	for j := start + 1; j < len(lines); j++ {
		if lines[j] == indent+marker {
			end = j
			break
		}
	}
	if end < 0 {
		return "", fmt.Errorf("heredoc %s is not closed in the template", marker)
	}
	var mid []string
	for _, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if l == "" {
			mid = append(mid, "")
			continue
		}
		mid = append(mid, indent+l)
	}
	out := append(append(append([]string{}, lines[:start+1]...), mid...), lines[end:]...)
	return strings.Join(out, "\n"), nil
}

// TestComponentDocuments parses every Image Builder component document of sam/image.yaml and
// checks what makes a broken build fail instead of producing a broken image: the document
// parses, fits Image Builder's size limit, has build, validate and test phases, and every
// ExecuteBash command starts with `set -euo pipefail` (AWSTOE runs a step's commands as one bash
// script, so without it only the last command's status would count).
func TestComponentDocuments(t *testing.T) {
	t.Parallel()
	for _, c := range components(t, loadTemplate(t, imageTemplatePath())) {
		t.Run(c.ID, func(t *testing.T) {
			t.Parallel()
			if len(c.Data) > maxComponentData {
				t.Errorf("document is %d characters; Image Builder takes at most %d", len(c.Data), maxComponentData)
			}
			if c.Doc.SchemaVersion != "1.0" {
				t.Errorf("schemaVersion = %q, want 1.0", c.Doc.SchemaVersion)
			}
			var phases []string
			for _, p := range c.Doc.Phases {
				phases = append(phases, p.Name)
				if len(p.Steps) == 0 {
					t.Errorf("phase %s has no steps", p.Name)
				}
				for _, s := range p.Steps {
					if s.Action != "ExecuteBash" || len(s.Inputs.Commands) == 0 {
						t.Errorf("step %s/%s: action %q with %d commands, want ExecuteBash with commands", p.Name, s.Name, s.Action, len(s.Inputs.Commands))
					}
				}
			}
			if diff := cmp.Diff([]string{"build", "validate", "test"}, phases); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
			for name, script := range c.scripts() {
				if !strings.HasPrefix(script, "set -euo pipefail\n") {
					t.Errorf("%s does not start with set -euo pipefail", name)
				}
			}
		})
	}
}

// TestRunnerInstall reads RunnerComponent's install step and checks the runner version, that each
// architecture's tarball is verified with sha256sum -c against exactly the checksum GitHub
// publishes for v2.331.0 before it is extracted, and the dependency install and ownership.
func TestRunnerInstall(t *testing.T) {
	t.Parallel()
	script := stepScript(t, "RunnerComponent", "build", "InstallRunner")
	for _, want := range []string{
		"version=2.331.0\n",
		`tarball="actions-runner-linux-$arch-$version.tar.gz"`,
		`"https://github.com/actions/runner/releases/download/v$version/$tarball"`,
		`echo "$sum  $tarball" | sha256sum -c -`,
		"/opt/actions-runner/bin/installdependencies.sh\n",
		"chown -R ubuntu:ubuntu /opt/actions-runner\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("InstallRunner lacks %q", want)
		}
	}
	if v, x := strings.Index(script, "sha256sum -c"), strings.Index(script, "tar -xzf"); v < 0 || x < 0 || v > x {
		t.Errorf("the checksum must be verified before the tarball is extracted")
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+)\) arch=(\w+); sum=(\w+) ;;$`).FindAllStringSubmatch(script, -1) {
		got[m[1]] = m[2] + " " + m[3]
	}
	want := map[string]string{
		"x86_64":  "x64 5fcc01bd546ba5c3f1291c2803658ebd3cedb3836489eda3be357d41bfcf28a7",
		"aarch64": "arm64 f5863a211241436186723159a111f352f25d5d22711639761ea24c98caef1a9a",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("runner architectures and checksums (-want +got):\n%s", diff)
	}
}

// TestPrePulledImages reads ImagesComponent, the recipe and the preset's SSM parameter and checks
// that the default images are all pulled and that the preset's AdditionalDockerImages reach the
// build: template parameter -> SSM parameter -> recipe component parameter -> pull step.
func TestPrePulledImages(t *testing.T) {
	t.Parallel()
	tmpl := loadTemplate(t, imageTemplatePath())
	script := stepScript(t, "ImagesComponent", "build", "PullImages")

	m := regexp.MustCompile(`(?m)^images=\(([^)]*)\)$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal("PullImages has no images=(...) list")
	}
	if diff := cmp.Diff([]string{"node:20", "python:3.11", "golang:1.21", "alpine:3.19", "ubuntu:22.04"}, strings.Fields(m[1])); diff != "" {
		t.Errorf("default images (-want +got):\n%s", diff)
	}
	for _, want := range []string{
		`--name '{{ AdditionalImagesParameter }}'`,
		`images+=("${more[@]}")`,
		`docker pull --quiet "$image"`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("PullImages lacks %q", want)
		}
	}

	var params []string
	for _, c := range components(t, tmpl) {
		if c.ID == "ImagesComponent" {
			for _, p := range c.Doc.Parameters {
				for name, spec := range p {
					params = append(params, name+":"+spec.Type)
				}
			}
		}
	}
	if diff := cmp.Diff([]string{"AdditionalImagesParameter:string"}, params); diff != "" {
		t.Errorf("ImagesComponent parameters (-want +got):\n%s", diff)
	}

	wantRecipe := []any{
		map[string]any{"ComponentArn": map[string]any{"!Ref": "BaseComponent"}},
		map[string]any{"ComponentArn": map[string]any{"!Ref": "RunnerComponent"}},
		map[string]any{
			"ComponentArn": map[string]any{"!Ref": "ImagesComponent"},
			"Parameters": []any{map[string]any{
				"Name":  "AdditionalImagesParameter",
				"Value": []any{map[string]any{"!Ref": "AdditionalDockerImagesParameter"}},
			}},
		},
		map[string]any{"ComponentArn": map[string]any{"!Ref": "BootstrapComponent"}},
		map[string]any{"ComponentArn": map[string]any{"!Ref": "ServiceComponent"}},
	}
	if diff := cmp.Diff(wantRecipe, plain(mustGet(t, tmpl, "Resources", "ImageRecipe", "Properties", "Components"))); diff != "" {
		t.Errorf("recipe components (-want +got):\n%s", diff)
	}
	wantParam := map[string]any{
		"Name":        map[string]any{"!Sub": "/spotrunner/${Deployment}/image/${PresetName}/additional-docker-images"},
		"Type":        "String",
		"Description": map[string]any{"!Sub": "Docker images pre-pulled into the ${PresetName} image besides the defaults"},
		"Value":       map[string]any{"!If": []any{"HasAdditionalDockerImages", map[string]any{"!Ref": "AdditionalDockerImages"}, "none"}},
	}
	if diff := cmp.Diff(wantParam, plain(mustGet(t, tmpl, "Resources", "AdditionalDockerImagesParameter", "Properties"))); diff != "" {
		t.Errorf("AdditionalDockerImagesParameter (-want +got):\n%s", diff)
	}
}

// TestImageRecipe checks the recipe's parent image per architecture (Image Builder's managed
// Ubuntu 22.04, newest version at each build) and that the launch template cannot ask for a root
// volume smaller than the image's.
func TestImageRecipe(t *testing.T) {
	t.Parallel()
	tmpl := loadTemplate(t, imageTemplatePath())
	recipe := mustGet(t, tmpl, "Resources", "ImageRecipe", "Properties")
	wantParent := map[string]any{"!If": []any{
		"IsArm64",
		map[string]any{"!Sub": "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:aws:image/ubuntu-server-22-lts-arm64/x.x.x"},
		map[string]any{"!Sub": "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:aws:image/ubuntu-server-22-lts-x86/x.x.x"},
	}}
	if diff := cmp.Diff(wantParent, plain(get(recipe, "ParentImage"))); diff != "" {
		t.Errorf("parent image (-want +got):\n%s", diff)
	}
	imageSize := plain(mustGet(t, recipe, "BlockDeviceMappings")).([]any)[0].(map[string]any)["Ebs"].(map[string]any)["VolumeSize"]
	if minSize := mustGet(t, tmpl, "Parameters", "DiskSizeGb", "MinValue").Value; imageSize != minSize {
		t.Errorf("image root volume %v GiB, DiskSizeGb MinValue %s: they must match", imageSize, minSize)
	}
}

// TestImageVersion guards the immutability of Image Builder components and recipes: it hashes
// every component document and the recipe and compares with testdata/image-version.golden. A
// changed hash with an unchanged Mappings.Image.Components.Version would make CloudFormation's
// replacement fail on deploy (same name and version), so the test fails until the version is
// bumped; -update then records the new version and hash.
func TestImageVersion(t *testing.T) {
	t.Parallel()
	tmpl := loadTemplate(t, imageTemplatePath())
	version := mustGet(t, tmpl, "Mappings", "Image", "Components", "Version").Value
	h := sha256.New()
	for _, c := range components(t, tmpl) {
		fmt.Fprintf(h, "%s\n%s\n", c.ID, c.Data)
	}
	recipe, err := yaml.Marshal(mustGet(t, tmpl, "Resources", "ImageRecipe", "Properties"))
	if err != nil {
		t.Fatal(err)
	}
	h.Write(recipe)
	got := version + " " + hex.EncodeToString(h.Sum(nil)) + "\n"

	golden := filepath.Join("testdata", "image-version.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./instance -run TestImageVersion -update)", err)
	}
	want := string(raw)
	if want == got {
		return
	}
	if wantVersion, _, _ := strings.Cut(want, " "); wantVersion == version {
		t.Errorf("a component document or the recipe changed but Mappings.Image.Components.Version is still %s: "+
			"bump it in sam/image.yaml, then run go test ./instance -run TestImageVersion -update", version)
		return
	}
	t.Errorf("version %s is not recorded: run go test ./instance -run TestImageVersion -update", version)
}

// TestLaunchTemplate checks the runner launch template against the design: IMDSv2 only with hop
// limit 1 and instance tags readable (the bootstrap's settings), encrypted gp3 root volume of
// DiskSizeGb, shutdown means terminate, the caller's security group and nothing that forces a
// public IP, an AMI or an instance type (the provisioner's fleet request decides those); user data
// only for a preset with its own AMI.
func TestLaunchTemplate(t *testing.T) {
	t.Parallel()
	data := plain(mustGet(t, loadTemplate(t, imageTemplatePath()), "Resources", "LaunchTemplate", "Properties", "LaunchTemplateData")).(map[string]any)
	want := map[string]any{
		"InstanceInitiatedShutdownBehavior": "terminate",
		"SecurityGroupIds":                  []any{map[string]any{"!Ref": "SecurityGroupId"}},
		"MetadataOptions": map[string]any{
			"HttpEndpoint":            "enabled",
			"HttpTokens":              "required",
			"HttpPutResponseHopLimit": "1",
			"HttpProtocolIpv6":        "disabled",
			"InstanceMetadataTags":    "enabled",
		},
		"BlockDeviceMappings": []any{map[string]any{
			"DeviceName": "/dev/sda1",
			"Ebs": map[string]any{
				"VolumeSize":          map[string]any{"!Ref": "DiskSizeGb"},
				"VolumeType":          "gp3",
				"Encrypted":           "true",
				"DeleteOnTermination": "true",
			},
		}},
		"IamInstanceProfile": map[string]any{"Arn": map[string]any{"!GetAtt": "InstanceProfile.Arn"}},
	}
	got := map[string]any{}
	for k := range want {
		got[k] = data[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("launch template (-want +got):\n%s", diff)
	}
	for _, absent := range []string{"NetworkInterfaces", "ImageId", "InstanceType", "KeyName"} {
		if _, ok := data[absent]; ok {
			t.Errorf("launch template sets %s", absent)
		}
	}
	// User data only for a preset's own AMI, and then exactly UserData() (make generate writes it).
	userData, err := UserData()
	if err != nil {
		t.Fatal(err)
	}
	wantUserData := map[string]any{"!If": []any{"HasOwnAmi", userData, map[string]any{"!Ref": "AWS::NoValue"}}}
	if diff := cmp.Diff(wantUserData, data["UserData"]); diff != "" {
		t.Errorf("launch template UserData (-want +got); run make generate:\n%.2000s", diff)
	}
}

// TestInstanceRole checks that the runner instance role can do exactly one thing: read and delete
// a /spotrunner/<deployment>/jit/* parameter whose spotrunner:instance-arn tag names the calling instance.
func TestInstanceRole(t *testing.T) {
	t.Parallel()
	role := plain(mustGet(t, loadTemplate(t, imageTemplatePath()), "Resources", "InstanceRole", "Properties")).(map[string]any)
	want := []any{map[string]any{
		"PolicyName": "own-jit-config",
		"PolicyDocument": map[string]any{
			"Version": "2012-10-17",
			"Statement": []any{map[string]any{
				"Effect":   "Allow",
				"Action":   []any{"ssm:GetParameter", "ssm:DeleteParameter"},
				"Resource": map[string]any{"!Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/spotrunner/${Deployment}/jit/*"},
				"Condition": map[string]any{"StringEquals": map[string]any{
					"aws:ResourceTag/spotrunner:instance-arn": "${ec2:SourceInstanceARN}",
				}},
			}},
		},
	}}
	if diff := cmp.Diff(want, role["Policies"]); diff != "" {
		t.Errorf("instance role policies (-want +got):\n%s", diff)
	}
	for _, absent := range []string{"ManagedPolicyArns", "PermissionsBoundary"} {
		if _, ok := role[absent]; ok {
			t.Errorf("instance role has %s; it must have nothing but its own JIT config", absent)
		}
	}
}

// stepScript returns the single ExecuteBash command of a component step.
func stepScript(tb testing.TB, componentID, phase, step string) string {
	tb.Helper()
	for _, c := range components(tb, loadTemplate(tb, imageTemplatePath())) {
		if c.ID != componentID {
			continue
		}
		s, ok := c.step(phase, step)
		if !ok || len(s.Inputs.Commands) != 1 {
			tb.Fatalf("%s has no single-command %s step %s", componentID, phase, step)
		}
		return s.Inputs.Commands[0]
	}
	tb.Fatalf("sam/image.yaml has no %s", componentID)
	return ""
}
