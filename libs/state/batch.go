package state

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// JobKey names a job.
type JobKey struct {
	Host string
	ID   int64
}

// maxStalled bounds the requests in a row that read nothing (every key unprocessed).
const maxStalled = 8

// maxBatchGet is DynamoDB's limit of keys per BatchGetItem request.
const maxBatchGet = 100

// Jobs reads the jobs of keys, strongly consistent, in as few requests as DynamoDB allows (100
// keys each; keys it leaves unprocessed are asked again). A job that does not exist is not in
// the map. Repeated keys are read once (DynamoDB refuses a request that repeats a key).
func (s *Store) Jobs(ctx context.Context, keys []JobKey) (map[JobKey]Job, error) {
	out := make(map[JobKey]Job, len(keys))
	var avs []map[string]types.AttributeValue
	seen := map[JobKey]bool{}
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			avs = append(avs, key(jobKey(k.Host, k.ID), "JOB"))
		}
	}
	err := s.batchGet(ctx, avs, func(item map[string]types.AttributeValue) error {
		var it jobItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return fmt.Errorf("decode job %v: %w", item["pk"], err)
		}
		out[JobKey{it.Host, it.ID}] = it.Job
		return nil
	})
	return out, err
}

// Runners reads the runners of instanceIDs as Jobs reads jobs.
func (s *Store) Runners(ctx context.Context, instanceIDs []string) (map[string]Runner, error) {
	out := make(map[string]Runner, len(instanceIDs))
	var avs []map[string]types.AttributeValue
	seen := map[string]bool{}
	for _, id := range instanceIDs {
		if id != "" && !seen[id] {
			seen[id] = true
			avs = append(avs, key(runnerKey(id), "RUNNER"))
		}
	}
	err := s.batchGet(ctx, avs, func(item map[string]types.AttributeValue) error {
		var it runnerItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return fmt.Errorf("decode runner %v: %w", item["pk"], err)
		}
		out[it.InstanceID] = it.Runner
		return nil
	})
	return out, err
}

// batchGet reads keys (distinct) with consistent BatchGetItem requests and calls each for every
// item found. Unprocessed keys (throttling, the 16 MB response limit) go into the next request,
// after a pause that grows while DynamoDB keeps leaving keys unprocessed.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, each func(map[string]types.AttributeValue) error) error {
	for stalled := 0; len(keys) > 0; {
		n := min(len(keys), maxBatchGet)
		req := keys[:n]
		out, err := s.api.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			s.table: {Keys: req, ConsistentRead: aws.Bool(true)},
		}})
		if err != nil {
			return fmt.Errorf("read %d items: %w", n, err)
		}
		for _, item := range out.Responses[s.table] {
			if err := each(item); err != nil {
				return err
			}
		}
		left := out.UnprocessedKeys[s.table].Keys
		keys = append(left, keys[n:]...)
		if len(left) == 0 {
			stalled = 0
			continue
		}
		if len(left) == n {
			stalled++ // nothing read this time
			if stalled > maxStalled {
				return fmt.Errorf("read %d items: DynamoDB left every key unprocessed %d times in a row (throttled)", len(keys), stalled)
			}
		}
		if err := sleep(ctx, conflictPause(min(stalled, 5))); err != nil {
			return err
		}
	}
	return nil
}

// ItemsOf reads the items whose keys Phase returned (jobs and runners), as Jobs does: in
// batches, strongly consistent. An item deleted since is in neither map.
func (s *Store) ItemsOf(ctx context.Context, pks []string) (jobs map[string]Job, runners map[string]Runner, err error) {
	jobs, runners = map[string]Job{}, map[string]Runner{}
	var keys []map[string]types.AttributeValue
	seen := map[string]bool{}
	for _, pk := range pks {
		if seen[pk] {
			continue
		}
		seen[pk] = true
		if strings.HasPrefix(pk, "RUNNER#") {
			keys = append(keys, key(pk, "RUNNER"))
		} else {
			keys = append(keys, key(pk, "JOB"))
		}
	}
	err = s.batchGet(ctx, keys, func(item map[string]types.AttributeValue) error {
		var k struct {
			PK string `dynamodbav:"pk"`
			SK string `dynamodbav:"sk"`
		}
		if err := attributevalue.UnmarshalMap(item, &k); err != nil {
			return fmt.Errorf("decode item: %w", err)
		}
		if k.SK == "RUNNER" {
			var it runnerItem
			if err := attributevalue.UnmarshalMap(item, &it); err != nil {
				return fmt.Errorf("decode runner %s: %w", k.PK, err)
			}
			runners[k.PK] = it.Runner
			return nil
		}
		var it jobItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return fmt.Errorf("decode job %s: %w", k.PK, err)
		}
		jobs[k.PK] = it.Job
		return nil
	})
	return jobs, runners, err
}
