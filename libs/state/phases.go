package state

import (
	"context"
	"fmt"

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
	PhaseWaiting = "job#waiting" // a job queued or provisioning: no instance yet
	PhaseIdle    = "runner#idle" // an instance launched whose runner has not taken a job
	PhaseBusy    = "runner#busy" // a runner running a job
)

func jobPhase(s JobState) string {
	if s == Queued || s == Provisioning {
		return PhaseWaiting
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
