package lambdasim

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestCreateResources (local world): fixture is template.yaml, created in moto under a stack name
// of this test's own. Each queue, table and secret is there with the template's settings, as
// AWS reports them back: the job queue FIFO with its deduplication scope, throughput limit,
// visibility timeout, retention and a redrive policy naming the DLQ with maxReceiveCount 20; the
// table with its keys, both GSIs and TTL on expiresAt; the webhook secret a 48-character
// alphanumeric value; all named <stack>-<LogicalId>-<random>. The redrive policy works: the 21st
// receive of a message finds it in the DLQ.
func TestCreateResources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := world.AWS(t)
	tp := loadTemplate(t)
	stack := world.Name(t, "stack")
	res, err := CreateResources(ctx, cfg, tp, stack)
	if err != nil {
		t.Fatal(err)
	}
	if res.AccountID == "" {
		t.Error("no account id read from the ARNs")
	}

	name := regexp.MustCompile(`^` + regexp.QuoteMeta(stack) + `-(JobQueue|JobDeadLetterQueue|AmiWatcherDeadLetterQueue|StateTable|WebhookSecret)-[A-Z0-9]{13}(\.fifo)?$`)
	for id, q := range res.Queues {
		if !name.MatchString(q.Name) || strings.HasSuffix(q.Name, ".fifo") != (id != "AmiWatcherDeadLetterQueue") {
			t.Errorf("queue %s named %q", id, q.Name)
		}
	}

	api := sqs.NewFromConfig(cfg)
	attrs := func(id string) map[string]string {
		out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(res.Queues[id].URL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("queue %s: %v", id, err)
		}
		return out.Attributes
	}
	job, dlq := attrs("JobQueue"), attrs("JobDeadLetterQueue")
	for _, c := range []struct{ queue, attr, want string }{
		{"JobQueue", "FifoQueue", "true"},
		{"JobQueue", "ContentBasedDeduplication", "false"},
		{"JobQueue", "DeduplicationScope", "messageGroup"},
		{"JobQueue", "FifoThroughputLimit", "perMessageGroupId"},
		{"JobQueue", "VisibilityTimeout", "360"},
		{"JobQueue", "MessageRetentionPeriod", "345600"},
		{"JobDeadLetterQueue", "FifoQueue", "true"},
		{"JobDeadLetterQueue", "MessageRetentionPeriod", "1209600"},
	} {
		got := map[string]map[string]string{"JobQueue": job, "JobDeadLetterQueue": dlq}[c.queue][c.attr]
		if got != c.want {
			t.Errorf("%s %s = %q, want %q", c.queue, c.attr, got, c.want)
		}
	}
	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(job["RedrivePolicy"]), &redrive); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", job["RedrivePolicy"], err)
	}
	if redrive.DeadLetterTargetArn != res.Queues["JobDeadLetterQueue"].ARN || redrive.MaxReceiveCount != 20 {
		t.Errorf("RedrivePolicy = %+v, want the DLQ %s after 20 receives", redrive, res.Queues["JobDeadLetterQueue"].ARN)
	}

	desc, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(res.Tables["StateTable"].Name)})
	if err != nil {
		t.Fatal(err)
	}
	type index struct{ Name, Key, Projection string }
	var indexes []index
	for _, ix := range desc.Table.GlobalSecondaryIndexes {
		var key []string
		for _, k := range ix.KeySchema {
			key = append(key, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
		}
		indexes = append(indexes, index{aws.ToString(ix.IndexName), strings.Join(key, ","), string(ix.Projection.ProjectionType)})
	}
	slices.SortFunc(indexes, func(a, b index) int { return strings.Compare(a.Name, b.Name) })
	wantIndexes := []index{{"phase", "phase:HASH,pk:RANGE", "KEYS_ONLY"}, {"pool", "pool:HASH,pk:RANGE", "ALL"}, {"recent", "day:HASH,receivedMs:RANGE", "ALL"}}
	if diff := cmp.Diff(wantIndexes, indexes); diff != "" {
		t.Errorf("GSIs (-want +got):\n%s", diff)
	}
	var key []string
	for _, k := range desc.Table.KeySchema {
		key = append(key, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	if diff := cmp.Diff([]string{"pk:HASH", "sk:RANGE"}, key); diff != "" {
		t.Errorf("key schema (-want +got):\n%s", diff)
	}
	ttl, err := dynamodb.NewFromConfig(cfg).DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(res.Tables["StateTable"].Name)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(ttl.TimeToLiveDescription.AttributeName); got != "expiresAt" || ttl.TimeToLiveDescription.TimeToLiveStatus != "ENABLED" {
		t.Errorf("TTL = %s %s, want expiresAt ENABLED", got, ttl.TimeToLiveDescription.TimeToLiveStatus)
	}

	secret := res.Secrets["WebhookSecret"]
	if !regexp.MustCompile(`^[A-Za-z0-9]{48}$`).MatchString(secret.Value) {
		t.Errorf("webhook secret %q: want 48 letters and digits", secret.Value)
	}
	stored, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret.ARN)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(stored.SecretString) != secret.Value || !name.MatchString(secret.Name) {
		t.Errorf("stored secret %s = %q, want the value returned", secret.Name, aws.ToString(stored.SecretString))
	}

	// The redrive policy as moto applies it: after maxReceiveCount receives, the next receive
	// moves the message to the DLQ.
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(res.Queues["JobQueue"].URL), MessageBody: aws.String("poison"),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d"),
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 21; i++ {
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(res.Queues["JobQueue"].URL)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 21 {
			if len(out.Messages) != 0 {
				t.Errorf("receive 21 got the message, want it moved to the DLQ")
			}
			break
		}
		if len(out.Messages) != 1 {
			t.Fatalf("receive %d: %d messages, want the one", i, len(out.Messages))
		}
		if _, err := api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(res.Queues["JobQueue"].URL), ReceiptHandle: out.Messages[0].ReceiptHandle, VisibilityTimeout: 0,
		}); err != nil {
			t.Fatal(err)
		}
	}
	moved, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(res.Queues["JobDeadLetterQueue"].URL)})
	if err != nil {
		t.Fatal(err)
	}
	if len(moved.Messages) != 1 || aws.ToString(moved.Messages[0].Body) != "poison" {
		t.Errorf("DLQ holds %d messages, want the poison one", len(moved.Messages))
	}
}

// TestCreateParameters (local world): fixture is template.yaml with the image stacks' launch
// template outputs given. Each preset's document is created under /spotrunner/<stack>/presets/
// with the launch template filled in.
func TestCreateParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := world.AWS(t)
	tp := loadTemplate(t)
	stack := world.Name(t, "stack")
	r := Values{StackName: stack, Attributes: map[string]string{
		"RunnerImageLinuxX64.Outputs.LaunchTemplateId":   "lt-x64",
		"RunnerImageLinuxArm64.Outputs.LaunchTemplateId": "lt-arm64",
	}}
	names, err := CreateParameters(ctx, cfg, tp, r)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PresetLinuxX64": "/spotrunner/" + stack + "/presets/linux-x64", "PresetLinuxArm64": "/spotrunner/" + stack + "/presets/linux-arm64"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("parameters (-want +got):\n%s", diff)
	}
	out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(want["PresetLinuxArm64"])})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Name             string `json:"name"`
		LaunchTemplateID string `json:"launchTemplateId"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.Parameter.Value)), &doc); err != nil || doc.Name != "linux-arm64" || doc.LaunchTemplateID != "lt-arm64" {
		t.Errorf("preset document %s (%v): want linux-arm64 on lt-arm64", aws.ToString(out.Parameter.Value), err)
	}
}
