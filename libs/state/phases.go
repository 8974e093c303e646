package state

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// PhaseIndex is the sparse GSI over the phase attribute: jobs waiting for an instance and runners
// not yet done carry one, written with every transition, so the status counts them with one
// COUNT query each, whatever the number of jobs the table holds.
const PhaseIndex = "phase"

// Phases, as the status document counts them.
const (
	PhaseWaiting  = "job#waiting"  // a job queued or provisioning: no instance yet
	PhaseLaunched = "job#launched" // a job with a runner of its own waiting for it
	PhaseIdle     = "runner#idle"  // an instance launched whose runner has not taken a job
	PhaseBusy     = "runner#busy"  // a runner running a job
)

func jobPhase(s JobState) string {
	switch s {
	case Queued, Provisioning:
		return PhaseWaiting
	case Launched:
		return PhaseLaunched
	}
	return ""
}

func runnerPhase(s RunnerState) string {
	switch s {
	case Idle:
		return PhaseIdle
	case Busy:
		return PhaseBusy
	}
	return ""
}

// Counts are the items in each phase.
type Counts struct {
	Waiting, Idle, Busy int
}

// CountPhases counts the items of every phase: three COUNT queries on the phase index (each pages
// through at most 1 MB of keys at a time: one page up to tens of thousands of items).
func (s *Store) CountPhases(ctx context.Context) (Counts, error) {
	var c Counts
	for phase, dst := range map[string]*int{PhaseWaiting: &c.Waiting, PhaseIdle: &c.Idle, PhaseBusy: &c.Busy} {
		n, err := s.count(ctx, phase)
		if err != nil {
			return Counts{}, err
		}
		*dst = n
	}
	return c, nil
}

func (s *Store) count(ctx context.Context, phase string) (int, error) {
	var (
		n     int
		start map[string]types.AttributeValue
	)
	for {
		out, err := s.api.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(PhaseIndex),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": "phase"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(phase)},
			Select:                    types.SelectCount,
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return 0, fmt.Errorf("count %s: %w", phase, err)
		}
		n += int(out.Count)
		if start = out.LastEvaluatedKey; start == nil {
			return n, nil
		}
	}
}

// PageSize bounds the items one Phase call reads.
const PageSize = 100

// Phase returns up to PageSize items' keys of a phase, from the cursor after (empty: the start),
// and the cursor of the next page ("" at the end). Callers read each item (Job, Runner): the
// index holds keys only, and the read is strongly consistent.
func (s *Store) Phase(ctx context.Context, phase, after string) (pks []string, next string, err error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(PhaseIndex),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": "phase"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(phase)},
		Limit:                     aws.Int32(PageSize),
	}
	if after != "" {
		sk := "JOB"
		if strings.HasPrefix(after, "RUNNER#") {
			sk = "RUNNER"
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{"phase": str(phase), "pk": str(after), "sk": str(sk)}
	}
	out, err := s.api.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", phase, err)
	}
	for _, item := range out.Items {
		if v, ok := item["pk"].(*types.AttributeValueMemberS); ok {
			pks = append(pks, v.Value)
		}
	}
	if out.LastEvaluatedKey != nil {
		if v, ok := out.LastEvaluatedKey["pk"].(*types.AttributeValueMemberS); ok {
			next = v.Value
		}
	}
	return pks, next, nil
}

// RunnerOf reads the runner item whose key Phase returned.
func (s *Store) RunnerOf(ctx context.Context, pk string) (Runner, error) {
	id, ok := strings.CutPrefix(pk, "RUNNER#")
	if !ok {
		return Runner{}, fmt.Errorf("%q is not a runner key", pk)
	}
	return s.Runner(ctx, id)
}

// JobOf reads the job item whose key Phase returned.
func (s *Store) JobOf(ctx context.Context, pk string) (Job, error) {
	var it jobItem
	err := s.get(ctx, pk, "JOB", pk, &it)
	return it.Job, err
}
