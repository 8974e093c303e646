package instance

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strings"
	"text/template"
)

var (
	//go:embed bootstrap.sh
	bootstrapScript string
	//go:embed spotrunner.service
	serviceUnit string
	//go:embed userdata.sh
	userDataTemplate string
)

// maxUserData is EC2's limit on user data: "User data is limited to 16 KB, in raw form, before it
// is base64-encoded" (Amazon EC2 User Guide, "Work with instance user data",
// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html). The raw
// form here is the gzip stream.
const maxUserData = 16384

// The heredoc delimiters of userdata.sh; the same as sam/image.yaml's components use.
const (
	bootstrapDelimiter = "SPOTRUNNER_BOOTSTRAP_EOF"
	unitDelimiter      = "SPOTRUNNER_UNIT_EOF"
)

// UserData returns the user data for the launch template of a preset that names its own AMI
// (LaunchTemplateData.UserData): instance/userdata.sh with this package's bootstrap and unit in
// it, gzipped, base64-encoded. At first boot it installs the bootstrap and the unit where the AMI
// lacks them or holds another version, enables the unit and starts it (docs/instance.md,
// "Bring your own AMI").
//
// The script is gzipped so that it fits EC2's 16 KB (the bootstrap alone is most of that):
// cloud-init uncompresses gzip user data itself and then treats it as if it had not been
// compressed ("User-Data Formats", Gzip Compressed Content,
// https://cloudinit.readthedocs.io/en/22.1_a/topics/format.html; Ubuntu 22.04 ships cloud-init
// 22 or newer). The gzip header carries no name and no modification time, so the same files
// always give the same string: a generator writes it into a template, and a test compares.
// It returns an error when the gzip stream exceeds EC2's limit; the error gives the sizes.
func UserData() (string, error) {
	return encodeUserData(bootstrapScript, serviceUnit)
}

// encodeUserData is UserData for any bootstrap and unit, so that tests can reach its refusals.
func encodeUserData(bootstrap, unit string) (string, error) {
	script, err := renderUserData(bootstrap, unit)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", fmt.Errorf("gzip user data: %w", err)
	}
	// zw.Header stays zero: no file name, no comment, modification time 0 ("not available").
	if _, err := zw.Write([]byte(script)); err != nil {
		return "", fmt.Errorf("gzip user data: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("gzip user data: %w", err)
	}
	if buf.Len() > maxUserData {
		return "", fmt.Errorf("user data is %d bytes gzipped (script %d bytes), %d over EC2's limit of %d bytes",
			buf.Len(), len(script), buf.Len()-maxUserData, maxUserData)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// renderUserData returns userdata.sh with bootstrap and unit in its quoted heredocs, which keep
// every byte as it is. A heredoc always ends its text with a newline and stops at the first line
// equal to its delimiter, so a file must end with a newline and hold no such line.
func renderUserData(bootstrap, unit string) (string, error) {
	body := func(name, content, delimiter string) (string, error) {
		if !strings.HasSuffix(content, "\n") {
			return "", fmt.Errorf("render user data: %s does not end with a newline", name)
		}
		if strings.Contains("\n"+content, "\n"+delimiter+"\n") {
			return "", fmt.Errorf("render user data: %s has a line %s, which would end its heredoc", name, delimiter)
		}
		return strings.TrimSuffix(content, "\n"), nil // the template's line break puts it back
	}
	var data struct{ Bootstrap, Unit string }
	var err error
	if data.Bootstrap, err = body("bootstrap.sh", bootstrap, bootstrapDelimiter); err != nil {
		return "", err
	}
	if data.Unit, err = body("spotrunner.service", unit, unitDelimiter); err != nil {
		return "", err
	}
	tmpl, err := template.New("userdata.sh").Option("missingkey=error").Parse(userDataTemplate)
	if err != nil {
		return "", fmt.Errorf("parse userdata.sh: %w", err)
	}
	var out strings.Builder
	if err := tmpl.Execute(&out, data); err != nil {
		return "", fmt.Errorf("render userdata.sh: %w", err)
	}
	return out.String(), nil
}
