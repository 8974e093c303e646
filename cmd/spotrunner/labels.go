package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/spotrunner/spotrunner/internal/workflows"
)

func (a *app) labelsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "labels",
		Short: "Check spotrunner labels in workflows",
	}
	var presetsFile string
	check := &cobra.Command{
		Use:   "check <workflow files or dirs>...",
		Short: "Report each spotrunner label a workflow's runs-on has that would be rejected",
		Long: `Read runs-on in GitHub workflow files (a string, a list, or group and labels) and report
each spotrunner/* label that Spot Runner would reject: an unknown preset, a bad option, a value
out of bounds, a label the preset does not serve, or an unquoted cpu=4,ram=16 that YAML split
at the comma. The checks are the ones ingest and the provisioner apply, against the presets
file. Expressions such as ${{ matrix.os }} cannot be checked statically: they are reported as
unchecked, never as errors.

A directory is read for its *.yml and *.yaml files (give .github/workflows). Exit code 1 when
a label would be rejected or a file is not a workflow, 0 otherwise.`,
		Example: `  spotrunner labels check .github/workflows
  spotrunner labels check --presets ../spotrunner/presets.yaml ci.yml -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(presetsFile)
			if err != nil {
				return fmt.Errorf("read the presets file (--presets): %w", err)
			}
			known, err := workflows.ReadPresets(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", presetsFile, err)
			}
			files, err := workflows.Files(args)
			if err != nil {
				return err
			}
			findings := []workflows.Finding{}
			var fileErrs []string
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				got, err := workflows.Check(f, data, known)
				var fe *workflows.FileError
				switch {
				case errors.As(err, &fe):
					fileErrs = append(fileErrs, fe.Error())
				case err != nil:
					return err
				}
				findings = append(findings, got...)
			}
			errorCount := len(fileErrs)
			for _, f := range findings {
				if f.Severity == workflows.SeverityError {
					errorCount++
				}
			}
			if a.output == "json" {
				if fileErrs == nil {
					fileErrs = []string{}
				}
				if err := writeJSON(a.stdout, struct {
					Files      int                 `json:"files"`
					Findings   []workflows.Finding `json:"findings"`
					FileErrors []string            `json:"fileErrors"`
				}{len(files), findings, fileErrs}); err != nil {
					return err
				}
			} else {
				if len(findings) > 0 {
					t := newTable(a.stdout, "WHERE", "JOB", "SEVERITY", "LABEL", "REASON")
					for _, f := range findings {
						t.row(f.File+":"+strconv.Itoa(f.Line)+":"+strconv.Itoa(f.Column), f.Job, string(f.Severity), f.Label, f.Reason)
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
				for _, e := range fileErrs {
					fmt.Fprintf(a.stdout, "not checked: %s\n", e)
				}
				fmt.Fprintf(a.stdout, "%d %s checked: %d %s.\n", len(files), plural(len(files), "file", "files"), errorCount, plural(errorCount, "error", "errors"))
			}
			if errorCount > 0 {
				return errReported
			}
			return nil
		},
	}
	check.Flags().StringVar(&presetsFile, "presets", "presets.yaml", "the presets file the stack was deployed with")
	cmd.AddCommand(check)
	return cmd
}
