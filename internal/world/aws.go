package world

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotrunner/spotrunner/libs/awsconfig"
)

// AWS returns an aws.Config pointed at moto, or ends the test as Endpoint does.
func AWS(tb testing.TB) aws.Config {
	tb.Helper()
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{EndpointURL: Endpoint(tb), Region: "us-east-1"})
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

var seq atomic.Int64

// Name returns a name unique in this moto for this test run, e.g. for tables and queues: letters,
// digits, hyphens and underscores only (what SQS, DynamoDB and host names all accept).
func Name(tb testing.TB, prefix string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, tb.Name())
	n := fmt.Sprintf("%s-%s-%d-%d", prefix, safe, time.Now().UnixNano()%1e9, seq.Add(1))
	if len(n) > 70 {
		n = n[len(n)-70:]
	}
	return strings.Trim(n, "-")
}

// StateTable creates a state table shaped as template.yaml's StateTable (pk/sk, sparse GSIs
// "pool" on pool/pk, "phase" on phase/pk, keys only, and "recent" on day/receivedMs) and
// returns its name.
func StateTable(tb testing.TB, cfg aws.Config) string {
	tb.Helper()
	name := Name(tb, "state")
	_, err := dynamodb.NewFromConfig(cfg).CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: dbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("pool"), AttributeType: dbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("phase"), AttributeType: dbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("day"), AttributeType: dbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("receivedMs"), AttributeType: dbtypes.ScalarAttributeTypeN},
		},
		KeySchema: []dbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: dbtypes.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []dbtypes.GlobalSecondaryIndex{{
			IndexName: aws.String("pool"),
			KeySchema: []dbtypes.KeySchemaElement{
				{AttributeName: aws.String("pool"), KeyType: dbtypes.KeyTypeHash},
				{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeRange},
			},
			Projection: &dbtypes.Projection{ProjectionType: dbtypes.ProjectionTypeAll},
		}, {
			IndexName: aws.String("phase"),
			KeySchema: []dbtypes.KeySchemaElement{
				{AttributeName: aws.String("phase"), KeyType: dbtypes.KeyTypeHash},
				{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeRange},
			},
			Projection: &dbtypes.Projection{ProjectionType: dbtypes.ProjectionTypeKeysOnly},
		}, {
			IndexName: aws.String("recent"),
			KeySchema: []dbtypes.KeySchemaElement{
				{AttributeName: aws.String("day"), KeyType: dbtypes.KeyTypeHash},
				{AttributeName: aws.String("receivedMs"), KeyType: dbtypes.KeyTypeRange},
			},
			Projection: &dbtypes.Projection{ProjectionType: dbtypes.ProjectionTypeAll},
		}},
	})
	// moto's server drops idle keep-alive connections now and then; the SDK retries, and the retry
	// of a CreateTable that went through finds the (uniquely named) table there.
	var inUse *dbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		tb.Fatalf("create state table: %v", err)
	}
	return name
}

// FIFOQueue creates a FIFO queue (explicit deduplication ids, like template.yaml's JobQueue) and
// returns its URL.
func FIFOQueue(tb testing.TB, cfg aws.Config) string {
	tb.Helper()
	out, err := sqs.NewFromConfig(cfg).CreateQueue(context.Background(), &sqs.CreateQueueInput{
		QueueName:  aws.String(Name(tb, "jobs") + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"},
	})
	if err != nil {
		tb.Fatalf("create queue: %v", err)
	}
	return aws.ToString(out.QueueUrl)
}
