// Package state is Spot Runner's memory: one DynamoDB table (on-demand, TTL on finished items)
// holding jobs, runner instances, preset AMI status, capacity counters and hourly activity.
//
// Every job transition is a conditional write, so replays, duplicates and concurrent workers can
// neither move a job backwards nor launch for it twice. Keys (pk / sk):
//
//	JOB#<host>#<job id> / JOB            a workflow job, its state and timeline
//	RUNNER#<instance id> / RUNNER        a runner instance and the job it was launched for
//	PRESET / <name>                      a preset's AMI status
//	CAP / total, CAP / preset#<name>     running-instance counters for the optional caps
//	ACTIVITY / <yyyy-mm-ddThh>           hourly completed / failed counters
//	REDELIVERY / <delivery guid>         a webhook redelivery the reaper claimed (TTL 2 h)
//
// Jobs not yet started and runners not yet busy also carry a `pool` attribute (host + exact label
// set), indexed by the sparse GSI `pool`: one query answers "how many jobs wait and how many
// runners idle for this label set", which is how stolen runners and cancelled jobs are corrected.
// Jobs waiting for an instance or launched, and runners idle or busy, carry a `phase`, indexed by
// the sparse keys-only GSI `phase`: the status counts them with COUNT queries and the reaper pages
// through them, neither with a Scan. Status reads are bounded: a preset query, three COUNT
// queries, a 24-item activity query.
package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// PoolIndex is the name of the sparse GSI over the pool attribute.
const PoolIndex = "pool"

// Retention is how long finished items stay before DynamoDB's TTL removes them.
const Retention = 30 * 24 * time.Hour

// ErrConflict means a conditional write found the item in another state than required; the
// caller reads the current state and decides (usually: a duplicate, acknowledge).
var ErrConflict = errors.New("state conflict")

// ErrNotFound means the item does not exist.
var ErrNotFound = errors.New("state item not found")

// Store reads and writes the table. Safe for concurrent use.
type Store struct {
	api   API
	table string
	now   func() time.Time
}

// New returns a store over table.
func New(api API, table string) *Store { return &Store{api: api, table: table, now: time.Now} }

// WithClock returns a copy of s reading time from now (tests).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

func jobKey(host string, id int64) string { return "JOB#" + host + "#" + strconv.FormatInt(id, 10) }
func runnerKey(instanceID string) string  { return "RUNNER#" + instanceID }

// PoolKey names the pool of one exact label set on one host. The labels are those of
// labels.Set (normalised, sorted); hashing keeps the key short whatever the labels.
func PoolKey(host string, labelSet []string) string {
	sum := sha256.Sum256([]byte(strings.Join(labelSet, "\n")))
	return host + "#" + hex.EncodeToString(sum[:16])
}
