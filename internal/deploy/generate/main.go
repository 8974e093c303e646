// Command generate rewrites the generated regions of template.yaml from presets.yaml (make
// generate). internal/deploy's TestGenerated fails while they are stale.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spotrunner/spotrunner/internal/deploy"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	files, err := deploy.Generate(root)
	if err == nil {
		for name, data := range files {
			if err = os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}
