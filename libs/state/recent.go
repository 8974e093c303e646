package state

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// RecentIndex is the GSI over jobs by the UTC day they were received (`day`, e.g. "2026-12-02")
// and the millisecond they were received (`receivedMs`): the operator lists recent jobs newest
// first with one Query per day, never a Scan. Only job items carry `day`.
const RecentIndex = "recent"

// dayFormat is the `day` partition of RecentIndex.
const dayFormat = "2006-01-02"

// JobFilter narrows RecentJobs; zero fields match every job.
type JobFilter struct {
	States []JobState
	Owner  string
	Repo   string // the repository's name, without its owner
}

// RecentJobs returns the jobs received at or after since, newest first, that match f: at most
// limit (0: every one). It queries RecentIndex one day at a time from today back to since's day
// (at most Retention's days: older jobs are gone), filtering on the server.
func (s *Store) RecentJobs(ctx context.Context, since time.Time, f JobFilter, limit int) ([]Job, error) {
	now := s.now().UTC()
	if oldest := now.Add(-Retention); since.Before(oldest) {
		since = oldest
	}
	var (
		names  = map[string]string{"#d": "day", "#r": "receivedMs"}
		values = map[string]types.AttributeValue{":since": num(since.UnixMilli())}
		filter []string
	)
	if len(f.States) > 0 {
		names["#s"] = "state"
		var in []string
		for i, st := range f.States {
			v := fmt.Sprintf(":s%d", i)
			values[v] = str(string(st))
			in = append(in, v)
		}
		filter = append(filter, "#s IN ("+strings.Join(in, ", ")+")")
	}
	if f.Owner != "" {
		names["#o"], values[":o"] = "owner", str(f.Owner)
		filter = append(filter, "#o = :o")
	}
	if f.Repo != "" {
		names["#repo"], values[":repo"] = "repo", str(f.Repo)
		filter = append(filter, "#repo = :repo")
	}
	var jobs []Job
	for day := now.Truncate(24 * time.Hour); !day.Before(since.UTC().Truncate(24 * time.Hour)); day = day.Add(-24 * time.Hour) {
		values[":d"] = str(day.Format(dayFormat))
		in := &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(RecentIndex),
			KeyConditionExpression:    aws.String("#d = :d AND #r >= :since"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
			ScanIndexForward:          aws.Bool(false),
		}
		if len(filter) > 0 {
			in.FilterExpression = aws.String(strings.Join(filter, " AND "))
		}
		for {
			out, err := s.api.Query(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("list jobs of %s: %w", day.Format(dayFormat), err)
			}
			for _, item := range out.Items {
				var it jobItem
				if err := attributevalue.UnmarshalMap(item, &it); err != nil {
					return nil, fmt.Errorf("decode job %v: %w", item["pk"], err)
				}
				jobs = append(jobs, it.Job)
				if limit > 0 && len(jobs) == limit {
					return jobs, nil
				}
			}
			if in.ExclusiveStartKey = out.LastEvaluatedKey; in.ExclusiveStartKey == nil {
				break
			}
		}
	}
	return jobs, nil
}
