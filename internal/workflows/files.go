package workflows

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spotrunner/spotrunner/libs/presets"
)

// Files lists the files to check for the given paths, in order: a file as given, a directory as
// the *.yml and *.yaml files under it (e.g. .github/workflows), sorted.
func Files(paths []string) ([]string, error) {
	var files []string
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, path)
			continue
		}
		// WalkDir visits in lexical order, so each directory's files come out sorted.
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := strings.ToLower(filepath.Ext(p)); !d.IsDir() && (ext == ".yml" || ext == ".yaml") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list workflow files under %s: %w", path, err)
		}
	}
	return files, nil
}

// launchTemplatePlaceholder stands in for the launch template the deployment makes for each
// preset: a preset document needs one, and nothing Check decides depends on it.
const launchTemplatePlaceholder = "lt-static-check"

// ReadPresets reads a presets file (presets.yaml) into the presets Check takes, by name. Each
// entry takes the path the provisioner's presets take: the document the deployment writes to
// SSM, read back by presets.Parse, so defaults and bounds are the ones the provisioner applies.
func ReadPresets(data []byte) (map[string]presets.Preset, error) {
	entries, err := presets.ParseFile(data)
	if err != nil {
		return nil, err
	}
	known := make(map[string]presets.Preset, len(entries))
	for _, e := range entries {
		doc, err := e.Document(launchTemplatePlaceholder)
		if err != nil {
			return nil, fmt.Errorf("preset %s: %w", e.Name, err)
		}
		p, err := presets.Parse(doc)
		if err != nil {
			return nil, fmt.Errorf("preset %s: %w", e.Name, err)
		}
		known[p.Name] = p
	}
	return known, nil
}
