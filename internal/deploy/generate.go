package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spotrunner/spotrunner/instance"
	"github.com/spotrunner/spotrunner/libs/presets"
)

// A generated region of a template sits between a begin and an end marker comment; the generator
// replaces what is between them and keeps the markers, at the begin marker's indentation:
//
//	# begin generated: <region> (from presets.yaml; make generate)
//	...
//	# end generated: <region>
var (
	beginMarker = regexp.MustCompile(`^( *)# begin generated: ([a-z-]+) `)
	endMarker   = regexp.MustCompile(`^ *# end generated: ([a-z-]+)$`)
)

// Rewrite replaces every generated region of src with its text in regions (unindented; Rewrite
// indents it). A region of src missing from regions, or of regions missing from src, or a marker
// without its pair is an error: a template and its generator must agree on every region.
func Rewrite(src []byte, regions map[string]string) ([]byte, error) {
	var out bytes.Buffer
	lines := strings.SplitAfter(string(src), "\n")
	seen := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		out.WriteString(lines[i])
		m := beginMarker.FindStringSubmatch(lines[i])
		if m == nil {
			if e := endMarker.FindStringSubmatch(strings.TrimRight(lines[i], "\n")); e != nil {
				return nil, fmt.Errorf("line %d: end of region %s without its begin", i+1, e[1])
			}
			continue
		}
		indent, name := m[1], m[2]
		text, ok := regions[name]
		if !ok {
			return nil, fmt.Errorf("line %d: no generator for region %s", i+1, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d: region %s appears twice", i+1, name)
		}
		seen[name] = true
		end := i + 1
		for ; end < len(lines); end++ {
			if e := endMarker.FindStringSubmatch(strings.TrimRight(lines[end], "\n")); e != nil {
				if e[1] != name {
					return nil, fmt.Errorf("line %d: region %s ends inside region %s", end+1, e[1], name)
				}
				break
			}
			if beginMarker.MatchString(lines[end]) {
				return nil, fmt.Errorf("line %d: a region begins inside region %s", end+1, name)
			}
		}
		if end == len(lines) {
			return nil, fmt.Errorf("line %d: region %s has no end marker", i+1, name)
		}
		if text = strings.TrimSuffix(text, "\n"); text != "" {
			for _, l := range strings.Split(text, "\n") {
				if l != "" {
					l = indent + l
				}
				out.WriteString(l + "\n")
			}
		}
		out.WriteString(lines[end])
		i = end
	}
	for name := range regions {
		if !seen[name] {
			return nil, fmt.Errorf("region %s: no begin marker in the template", name)
		}
	}
	return out.Bytes(), nil
}

// LogicalID is the CloudFormation logical id part of a preset: linux-x64 -> LinuxX64.
func LogicalID(preset string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(preset, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// AppRegions are template.yaml's generated regions for the presets of the presets file.
func AppRegions(entries []presets.Entry) (map[string]string, error) {
	ids := map[string]string{}
	for _, e := range entries {
		id := LogicalID(e.Name)
		if other, dup := ids[id]; dup {
			return nil, fmt.Errorf("presets %s and %s share the logical id %s; rename one", other, e.Name, id)
		}
		ids[id] = e.Name
	}
	var names []string
	var built []presets.Entry // presets with an image pipeline
	var own []string          // AMIs presets bring
	for _, e := range entries {
		names = append(names, e.Name)
		if e.AMI == "" {
			built = append(built, e)
		} else {
			own = append(own, e.AMI)
		}
	}
	slices.Sort(own)
	own = slices.Compact(own)

	var res strings.Builder
	for i, e := range entries {
		if i > 0 {
			res.WriteString("\n")
		}
		if err := writePreset(&res, e); err != nil {
			return nil, err
		}
	}

	var launch strings.Builder
	launch.WriteString("- Sid: LaunchFromOurTemplates\n  Effect: Allow\n  Action: [ec2:CreateFleet, ec2:RunInstances]\n  Resource:\n")
	for _, e := range entries {
		fmt.Fprintf(&launch, "    - !Sub\n      - \"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:launch-template/${Id}\"\n      - Id: !GetAtt RunnerImage%s.Outputs.LaunchTemplateId\n", LogicalID(e.Name))
	}
	if len(own) > 0 {
		launch.WriteString("# The AMIs presets bring (presets.yaml ami), which may belong to another account.\n")
		launch.WriteString("- Sid: LaunchPresetAmis\n  Effect: Allow\n  Action: [ec2:CreateFleet, ec2:RunInstances]\n  Resource:\n")
		for _, ami := range own {
			fmt.Fprintf(&launch, "    - !Sub \"arn:${AWS::Partition}:ec2:${AWS::Region}::image/%s\"\n", ami)
		}
	}

	var pass strings.Builder
	pass.WriteString("- Sid: PassRunnerRoles\n  Effect: Allow\n  Action: iam:PassRole\n  Resource:\n")
	for _, e := range entries {
		fmt.Fprintf(&pass, "    - !GetAtt RunnerImage%s.Outputs.InstanceRoleArn\n", LogicalID(e.Name))
	}
	pass.WriteString("  Condition:\n    StringEquals:\n      iam:PassedToService: ec2.amazonaws.com\n")

	var pipelines, events, builds strings.Builder
	if len(built) == 0 {
		pipelines.WriteString("PIPELINES: \"\"\n")
	} else {
		var pairs []string
		for _, e := range built {
			pairs = append(pairs, fmt.Sprintf("%s=${RunnerImage%s.Outputs.ImagePipelineArn}", e.Name, LogicalID(e.Name)))
		}
		fmt.Fprintf(&pipelines, "PIPELINES: !Sub \"%s\"\n", strings.Join(pairs, ","))

		events.WriteString("# Builds of this stack's recipes only: image ARNs are image/<recipe name>/<version>/<build>,\n")
		events.WriteString("# with the recipe name (<stack>-<preset>) in lower case, hence ignore-case.\n")
		events.WriteString("ImageStateChange:\n  Type: EventBridgeRule\n  Properties:\n    Pattern:\n")
		events.WriteString("      source: [aws.imagebuilder]\n      detail-type: [EC2 Image Builder Image State Change]\n      resources:\n")
		for _, e := range built {
			fmt.Fprintf(&events, "        - prefix:\n            equals-ignore-case: !Sub \"arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:image/${AWS::StackName}-%s/\"\n", e.Name)
		}

		builds.WriteString("# The first build of each preset. The Service Authorization Reference maps\n")
		builds.WriteString("# StartImagePipelineExecution to this action, and to imagebuilder:TagResource only for\n")
		builds.WriteString("# a request that carries tags (ours carries none); no iam:PassRole.\n")
		builds.WriteString("- Sid: StartFirstBuilds\n  Effect: Allow\n  Action: imagebuilder:StartImagePipelineExecution\n  Resource:\n")
		for _, e := range built {
			fmt.Fprintf(&builds, "    - !GetAtt RunnerImage%s.Outputs.ImagePipelineArn\n", LogicalID(e.Name))
		}
	}

	var outputs strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&outputs, "LaunchTemplateId%s:\n  Description: Launch template of the %s preset (its launchTemplateId).\n  Value: !GetAtt RunnerImage%s.Outputs.LaunchTemplateId\n",
			LogicalID(e.Name), e.Name, LogicalID(e.Name))
	}

	list := "PRESETS: " + strings.Join(names, ",") + "\n"
	return map[string]string{
		"presets":                 res.String(),
		"provisioner-presets":     list,
		"provisioner-launch":      launch.String(),
		"provisioner-pass-roles":  pass.String(),
		"amiwatcher-pipelines":    pipelines.String(),
		"amiwatcher-image-events": events.String(),
		"amiwatcher-start-builds": builds.String(),
		"status-presets":          list,
		"outputs":                 outputs.String(),
	}, nil
}

// writePreset writes a preset's resources: its image stack (pipeline, launch template, instance
// role), its SSM document, and the custom resource that gives it its first AMI.
func writePreset(b *strings.Builder, e presets.Entry) error {
	id := LogicalID(e.Name)
	doc, err := e.Document("${LaunchTemplateId}")
	if err != nil {
		return err
	}
	if bytes.ContainsRune(doc, '\'') {
		return fmt.Errorf("preset %s: its document holds a single quote", e.Name)
	}
	if e.AMI == "" {
		fmt.Fprintf(b, "# %s (%s): built by its Image Builder pipeline\n", e.Name, e.Architecture)
	} else {
		fmt.Fprintf(b, "# %s (%s): its own AMI %s\n", e.Name, e.Architecture, e.AMI)
	}
	fmt.Fprintf(b, "RunnerImage%s:\n  Type: AWS::Serverless::Application\n  Properties:\n    Location: sam/image.yaml\n    Parameters:\n", id)
	fmt.Fprintf(b, "      Deployment: !Ref AWS::StackName\n      PresetName: %s\n      Architecture: %s\n      DiskSizeGb: \"%d\"\n", e.Name, e.Architecture, e.DiskSizeGB)
	if len(e.AdditionalDockerImages) > 0 {
		fmt.Fprintf(b, "      AdditionalDockerImages: %s\n", strings.Join(e.AdditionalDockerImages, ","))
	}
	if e.AMI != "" {
		fmt.Fprintf(b, "      Ami: %s\n", e.AMI)
	}
	b.WriteString("      SubnetId: !Select [0, !Ref RunnerSubnetIds]\n      SecurityGroupId: !Ref RunnerSecurityGroupId\n\n")

	fmt.Fprintf(b, "Preset%s:\n  Type: AWS::SSM::Parameter\n  Properties:\n", id)
	fmt.Fprintf(b, "    Name: !Sub /spotrunner/${AWS::StackName}/presets/%s\n    Type: String\n    Description: Spot Runner preset %s\n", e.Name, e.Name)
	fmt.Fprintf(b, "    Value: !Sub\n      - '%s'\n      - LaunchTemplateId: !GetAtt RunnerImage%s.Outputs.LaunchTemplateId\n\n", doc, id)

	if e.AMI == "" {
		fmt.Fprintf(b, "FirstBuild%s:\n  Type: Custom::FirstImageBuild\n", id)
		b.WriteString("  DependsOn: [AmiWatcherLogGroup, AmiWatcherFunctionImageStateChange, AmiWatcherFunctionImageStateChangePermission]\n")
		fmt.Fprintf(b, "  Properties:\n    ServiceToken: !GetAtt AmiWatcherFunction.Arn\n    ServiceTimeout: 120\n    Preset: %s\n", e.Name)
		fmt.Fprintf(b, "    PipelineArn: !GetAtt RunnerImage%s.Outputs.ImagePipelineArn\n    RecipeArn: !GetAtt RunnerImage%s.Outputs.ImageRecipeArn\n", id, id)
		return nil
	}
	fmt.Fprintf(b, "OwnAmi%s:\n  Type: Custom::PresetAmi\n  DependsOn: [AmiWatcherLogGroup]\n", id)
	fmt.Fprintf(b, "  Properties:\n    ServiceToken: !GetAtt AmiWatcherFunction.Arn\n    ServiceTimeout: 120\n    Preset: %s\n    Ami: %s\n", e.Name, e.AMI)
	return nil
}

// PresetsFile is the presets file, relative to the repository root.
const PresetsFile = "presets.yaml"

// Generate reads the presets file under root and returns each template with its generated
// regions rewritten, by path relative to root: template.yaml's presets, and sam/image.yaml's user
// data for presets with their own AMI (instance.UserData).
func Generate(root string) (map[string][]byte, error) {
	raw, err := os.ReadFile(filepath.Join(root, PresetsFile))
	if err != nil {
		return nil, err
	}
	entries, err := presets.ParseFile(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PresetsFile, err)
	}
	regions, err := AppRegions(entries)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PresetsFile, err)
	}
	userData, err := instance.UserData()
	if err != nil {
		return nil, err
	}
	image := map[string]string{"bootstrap-userdata": "- " + userData + "\n"}
	out := map[string][]byte{}
	for name, regions := range map[string]map[string]string{"template.yaml": regions, "sam/image.yaml": image} {
		src, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return nil, err
		}
		if out[name], err = Rewrite(src, regions); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}
