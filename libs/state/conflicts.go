package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB cancels a transaction, or refuses a single write to an item a transaction is writing,
// when two requests touch one item at once (TransactionConflict). That says nothing about the
// items' state: it is retried here a few times and, if it persists, reported as ErrContention —
// never as "cap reached" or "already released", which only a failed condition means.

// ErrContention means DynamoDB kept refusing a write because other requests were writing the same
// items (transaction conflicts). Transient: retry later.
var ErrContention = errors.New("state write conflicted with concurrent writes")

// conflictTries is how often a conflicting write is tried before ErrContention.
const conflictTries = 5

// conflictPause is the jittered pause before the n-th retry of a conflicting write.
func conflictPause(n int) time.Duration {
	d := time.Duration(10<<n) * time.Millisecond // 20, 40, 80, 160 ms
	return d/2 + rand.N(d/2+1)
}

// Outcome codes of one transaction item, as DynamoDB reports them in CancellationReasons.
const (
	reasonNone      = "None"
	reasonCondition = "ConditionalCheckFailed"
	reasonConflict  = "TransactionConflict"
)

// transact runs a transaction. It returns nil when it committed; the code of each item when
// DynamoDB cancelled it for a failed condition (reasonCondition where one failed, reasonNone
// elsewhere) with a nil error; ErrContention when conflicts outlasted the retries; any other
// error wrapped with what.
func (s *Store) transact(ctx context.Context, what string, items []types.TransactWriteItem) ([]string, error) {
	for try := 1; ; try++ {
		_, err := s.api.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return nil, nil
		}
		var cancelled *types.TransactionCanceledException
		if !errors.As(err, &cancelled) {
			if !isWriteConflict(err) {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		} else if codes, conflict := reasonCodes(cancelled, len(items)); !conflict {
			return codes, nil
		}
		if try == conflictTries {
			return nil, fmt.Errorf("%s: %d tries: %w", what, try, ErrContention)
		}
		if err := sleep(ctx, conflictPause(try)); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
}

// reasonCodes returns the code of each of n items and whether any of them is a conflict. A
// cancellation without reasons (not something DynamoDB sends) counts as a conflict: retried,
// never taken for a failed condition.
func reasonCodes(e *types.TransactionCanceledException, n int) ([]string, bool) {
	if len(e.CancellationReasons) != n {
		return nil, true
	}
	codes := make([]string, n)
	conflict := false
	for i, r := range e.CancellationReasons {
		codes[i] = aws.ToString(r.Code)
		if codes[i] == "" {
			codes[i] = reasonNone
		}
		if codes[i] == reasonConflict {
			conflict = true
		}
	}
	return codes, conflict
}

// isWriteConflict reports a single-item write refused because a transaction was writing the item.
func isWriteConflict(err error) bool {
	var tc *types.TransactionConflictException
	return errors.As(err, &tc)
}

// retryConflicts runs one single-item write, retrying it while DynamoDB refuses it for a
// concurrent transaction; it returns the write's own error otherwise.
func retryConflicts(ctx context.Context, write func() error) error {
	for try := 1; ; try++ {
		err := write()
		if !isWriteConflict(err) {
			return err
		}
		if try == conflictTries {
			return fmt.Errorf("%w (%d tries): %w", ErrContention, try, err)
		}
		if err := sleep(ctx, conflictPause(try)); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
