package awsgateway

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestWorldPassthrough (local world): fixtures are a state table, a FIFO queue, a secret and a
// SecureString parameter, each created through the gateway by the real SDK clients and read
// back through it. What is read must be what was written; the queue's URL (built by moto from
// the Host header) must lead back to the gateway; and the gateway must have recorded each call
// with its service and operation, in order.
func TestWorldPassthrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, cfg := startWorld(t, Options{})

	t.Run("DynamoDB", func(t *testing.T) {
		db := dynamodb.NewFromConfig(cfg)
		table := world.StateTable(t, cfg)
		type job struct {
			PK    string `dynamodbav:"pk"`
			SK    string `dynamodbav:"sk"`
			Phase string `dynamodbav:"phase"`
			Tries int    `dynamodbav:"tries"`
		}
		want := job{PK: "job#1", SK: "job", Phase: "queued", Tries: 2}
		item, err := attributevalue.MarshalMap(want)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}); err != nil {
			t.Fatal(err)
		}
		_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")})
		var failed *dbtypes.ConditionalCheckFailedException
		if !errors.As(err, &failed) {
			t.Errorf("second conditional put: %v, want ConditionalCheckFailedException (moto's, passed through)", err)
		}
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]dbtypes.AttributeValue{
			"pk": &dbtypes.AttributeValueMemberS{Value: "job#1"}, "sk": &dbtypes.AttributeValueMemberS{Value: "job"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		var got job
		if err := attributevalue.UnmarshalMap(out.Item, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("item read back (-want +got):\n%s", diff)
		}
	})

	t.Run("SQS", func(t *testing.T) {
		client := sqs.NewFromConfig(cfg)
		queue := world.FIFOQueue(t, cfg)
		if !strings.HasPrefix(queue, g.URL()+"/") {
			t.Errorf("queue URL %s does not lead back to the gateway %s", queue, g.URL())
		}
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: aws.String(queue), MessageBody: aws.String(`{"version":1,"job":42}`), MessageGroupId: aws.String("ghes"), MessageDeduplicationId: aws.String("42"),
		}); err != nil {
			t.Fatal(err)
		}
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != `{"version":1,"job":42}` {
			t.Errorf("received %+v, want the one message sent", out.Messages)
		}
	})

	t.Run("Secrets Manager", func(t *testing.T) {
		client := secretsmanager.NewFromConfig(cfg)
		name := world.Name(t, "github-app-key")
		if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")}); err != nil {
			t.Fatal(err)
		}
		out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.SecretString); got != "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n" {
			t.Errorf("secret read back %q", got)
		}
	})

	t.Run("SSM", func(t *testing.T) {
		client := ssm.NewFromConfig(cfg)
		name := "/spotrunner/test/jit/" + world.Name(t, "i")
		if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String("eyJqaXQiOnRydWV9"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
			t.Fatal(err)
		}
		out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.Parameter.Value); got != "eyJqaXQiOnRydWV9" {
			t.Errorf("parameter read back %q", got)
		}
		_, err = client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name + "-missing")})
		var notFound *ssmtypes.ParameterNotFound
		if !errors.As(err, &notFound) {
			t.Errorf("missing parameter: %v, want ParameterNotFound (moto's, passed through)", err)
		}
	})

	want := []Call{
		{"dynamodb", "CreateTable"}, {"dynamodb", "PutItem"}, {"dynamodb", "PutItem"}, {"dynamodb", "GetItem"},
		{"sqs", "CreateQueue"}, {"sqs", "SendMessage"}, {"sqs", "ReceiveMessage"},
		{"secretsmanager", "CreateSecret"}, {"secretsmanager", "GetSecretValue"},
		{"ssm", "PutParameter"}, {"ssm", "GetParameter"}, {"ssm", "GetParameter"},
	}
	// A call the SDK retried (moto drops idle connections now and then) is recorded per attempt.
	if diff := cmp.Diff(slices.Compact(want), slices.Compact(g.Calls())); diff != "" {
		t.Errorf("Calls(), retries folded (-want +got):\n%s", diff)
	}
}

// TestWorldAWSCLI (local world): fixtures are the AWS CLI, run with dummy credentials, no
// config file and no endpoint but --endpoint-url <gateway>, and a SecureString parameter put
// through the gateway. The CLI must read it exactly as the instance bootstrap does
// (instance/bootstrap.sh: get-parameter --with-decryption --query Parameter.Value --output
// text), delete it, and get AWS's tier refusal for a value too long, with its text, from
// put-parameter; the gateway must have seen each call as SSM's.
func TestWorldAWSCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, cfg := startWorld(t, Options{})
	cli, err := exec.LookPath("aws")
	if err != nil {
		t.Fatalf("the AWS CLI is part of the local world (scripts/deps.sh installs it): %v", err)
	}
	name := "/spotrunner/test/jit/" + world.Name(t, "i")
	client := ssm.NewFromConfig(cfg)
	if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String("eyJydW5uZXIiOiJqaXQifQ=="), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}

	// env is the CLI's environment: no AWS settings but these, so it can reach nothing else.
	env := []string{
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull, "AWS_PAGER=",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	run := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append([]string{"--endpoint-url", g.URL(), "--region", "us-east-1"}, args...)...)
		cmd.Env = env
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	out, stderr, err := run("ssm", "get-parameter", "--name", name, "--with-decryption", "--query", "Parameter.Value", "--output", "text")
	if err != nil || out != "eyJydW5uZXIiOiJqaXQifQ==\n" {
		t.Errorf("aws ssm get-parameter: %v, stdout %q, stderr %q; want the value", err, out, stderr)
	}
	if _, stderr, err := run("ssm", "delete-parameter", "--name", name); err != nil {
		t.Errorf("aws ssm delete-parameter: %v, stderr %q", err, stderr)
	}
	_, err = client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	var notFound *ssmtypes.ParameterNotFound
	if !errors.As(err, &notFound) {
		t.Errorf("parameter after the CLI deleted it: %v, want ParameterNotFound", err)
	}
	_, stderr, err = run("ssm", "put-parameter", "--name", name, "--type", "String", "--value", strings.Repeat("x", 4097))
	if err == nil || !strings.Contains(stderr, "(ValidationException)") || !strings.Contains(stderr, wantStandardTooLong) {
		t.Errorf("aws ssm put-parameter of 4097 characters: %v, stderr %q; want AWS's ValidationException and text", err, stderr)
	}

	want := []Call{{"ssm", "PutParameter"}, {"ssm", "GetParameter"}, {"ssm", "DeleteParameter"}, {"ssm", "GetParameter"}, {"ssm", "PutParameter"}}
	if diff := cmp.Diff(slices.Compact(want), slices.Compact(g.Calls())); diff != "" {
		t.Errorf("Calls(), retries folded (-want +got):\n%s", diff)
	}
}
