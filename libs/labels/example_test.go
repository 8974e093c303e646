package labels_test

import (
	"errors"
	"fmt"

	"github.com/spotrunner/spotrunner/libs/labels"
)

func ExampleParse() {
	spec, err := labels.Parse("SpotRunner/Linux-X64/ram=16, cpu=4")
	fmt.Printf("%+v %v\n", spec, err)

	_, err = labels.Parse("spotrunner/linux-x64/ram=1.5")
	var e *labels.Error
	if errors.As(err, &e) {
		fmt.Println(e.Reason)
	}
	// Output:
	// {Label:spotrunner/linux-x64/cpu=4,ram=16 Preset:linux-x64 CPU:4 RAMGiB:16} <nil>
	// ram must be a whole number of GiB from 1 to 1024, written with digits only (no sign, no decimal point), got "1.5"
}

func ExampleFind() {
	for _, job := range [][]string{
		{"ubuntu-latest"},
		{"self-hosted", "spotrunner/linux-arm64/cpu=8"},
		{"self-hosted", "spotrunner/linux-arm64/gpu=1"},
	} {
		spec, ok, err := labels.Find(job)
		fmt.Printf("ours=%v preset=%q cpu=%d rejected=%v\n", ok, spec.Preset, spec.CPU, err != nil)
	}
	// Output:
	// ours=false preset="" cpu=0 rejected=false
	// ours=true preset="linux-arm64" cpu=8 rejected=false
	// ours=true preset="" cpu=0 rejected=true
}

func ExampleSet() {
	fmt.Println(labels.Set([]string{"SpotRunner/Linux-X64/ram=16,cpu=4", " Self-Hosted", "self-hosted"}))
	// Output:
	// [self-hosted spotrunner/linux-x64/ram=16,cpu=4]
}
