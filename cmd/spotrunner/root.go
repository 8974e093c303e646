package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/spf13/cobra"

	"github.com/spotrunner/spotrunner/libs/awsconfig"
	"github.com/spotrunner/spotrunner/libs/githubapp"
)

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// DefaultStack is the app stack's name as samconfig.toml deploys it.
const DefaultStack = "SpotRunnerStack"

// usageError is a mistake in the command line: exit code 2, with the command's usage hint.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errReported is a failure already reported to the user in full (e.g. findings): exit 1, no
// further message.
var errReported = errors.New("reported")

// app is one run of the CLI: its flags, output streams and the AWS config, loaded on first use.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	now func() time.Time

	output   string // table | json
	stack    string
	region   string
	profile  string
	endpoint string
	// Resources, each from its flag or else from the stack's outputs.
	statusURL, table, queueURL, dlqURL, host string

	httpClient *http.Client

	cfg     *aws.Config
	outputs map[string]string // the stack's outputs and parameters, once read
}

// run runs the CLI with args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, httpClient: &http.Client{Timeout: 30 * time.Second}}
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	stdout, stderr := a.stdout, a.stderr
	root := a.command()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "spotrunner: %v\nRun 'spotrunner --help' for usage.\n", err)
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailure
	default:
		fmt.Fprintf(stderr, "spotrunner: %v\n", err)
		return exitFailure
	}
}

func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:   "spotrunner",
		Short: "Operate a Spot Runner deployment",
		Long: `Operate a Spot Runner deployment: its status, recent jobs and one job's timeline, the
dead-letter queue, and a static check of workflow labels.

Resources are found from the stack's outputs (--stack, default ` + DefaultStack + `, or
SPOTRUNNER_STACK), or from a flag each. AWS credentials and region come from the usual places
(environment, ~/.aws/config and credentials, --profile, --region), as for the AWS CLI.

Exit codes: 0 success, 1 failure, 2 usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("--output %q: want table or json", a.output)
			}
			return nil
		},
	}
	stack := a.getenv("SPOTRUNNER_STACK")
	if stack == "" {
		stack = DefaultStack
	}
	f := root.PersistentFlags()
	f.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	f.StringVar(&a.stack, "stack", stack, "the app stack whose outputs name the resources (env SPOTRUNNER_STACK)")
	f.StringVar(&a.region, "region", "", "AWS region (default: AWS_REGION, then the profile's)")
	f.StringVar(&a.profile, "profile", "", "AWS profile (default: AWS_PROFILE, then default)")
	f.StringVar(&a.endpoint, "endpoint-url", "", "send every AWS call to this URL (default: AWS_ENDPOINT_URL, then AWS's)")
	f.StringVar(&a.statusURL, "status-url", "", "the status document's URL (default: the stack's StatusUrl output)")
	f.StringVar(&a.table, "table", "", "the state table (default: the stack's StateTableName output)")
	f.StringVar(&a.queueURL, "queue-url", "", "the job queue's URL (default: the stack's JobQueueUrl output)")
	f.StringVar(&a.dlqURL, "dlq-url", "", "the dead-letter queue's URL (default: the stack's JobDeadLetterQueueUrl output)")
	f.StringVar(&a.host, "github-host", "", "the GitHub host jobs are keyed by (default: from the stack's GitHubServerUrl parameter)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.statusCommand(), a.jobsCommand(), a.dlqCommand(), a.labelsCommand())
	// Unknown subcommands and missing or extra arguments are usage errors.
	wrapArgs(root)
	return root
}

// wrapArgs makes argument-count errors of c and its subcommands usage errors.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	if c.HasSubCommands() && c.RunE == nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		}
		c.Args = cobra.ArbitraryArgs
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// awsConfig loads the AWS config once, the AWS CLI's way (environment, shared config and
// credentials, --profile, --region, --endpoint-url), with the services' retries.
func (a *app) awsConfig(ctx context.Context) (aws.Config, error) {
	if a.cfg != nil {
		return *a.cfg, nil
	}
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{Region: a.region, Profile: a.profile, EndpointURL: a.endpoint, HTTPTimeout: 30 * time.Second})
	if errors.Is(err, awsconfig.ErrNoRegion) {
		return aws.Config{}, usagef("no AWS region: give --region, or set AWS_REGION or the profile's region")
	}
	if err != nil {
		return aws.Config{}, err
	}
	a.cfg = &cfg
	return cfg, nil
}

// resource returns the flag's value, or else the stack's output (or parameter) of that name.
func (a *app) resource(ctx context.Context, flag *string, flagName, output string) (string, error) {
	if *flag != "" {
		return *flag, nil
	}
	if a.outputs == nil {
		cfg, err := a.awsConfig(ctx)
		if err != nil {
			return "", err
		}
		out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(a.stack)})
		if err != nil {
			return "", fmt.Errorf("read stack %s (or give --%s): %w", a.stack, flagName, err)
		}
		if len(out.Stacks) == 0 {
			return "", fmt.Errorf("stack %s not found (give --stack or --%s)", a.stack, flagName)
		}
		a.outputs = map[string]string{}
		for _, p := range out.Stacks[0].Parameters {
			a.outputs[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
		}
		for _, o := range out.Stacks[0].Outputs {
			a.outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
		}
	}
	v := a.outputs[output]
	if v == "" {
		return "", fmt.Errorf("stack %s has no %s (give --%s)", a.stack, output, flagName)
	}
	*flag = v
	return v, nil
}

func (a *app) tableName(ctx context.Context) (string, error) {
	return a.resource(ctx, &a.table, "table", "StateTableName")
}

func (a *app) githubHost(ctx context.Context) (string, error) {
	if a.host != "" {
		return strings.ToLower(a.host), nil
	}
	url, err := a.resource(ctx, new(string), "github-host", "GitHubServerUrl")
	if err != nil {
		return "", err
	}
	a.host = githubapp.Host(url)
	return a.host, nil
}
