package awsgateway

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// dynamo is the DynamoDB behaviour moto lacks, as internal/world.DynamoDB gives it to unit tests:
// writes reach moto one at a time (DynamoDB applies each conditional write and transaction
// atomically; moto's server checks conditions and applies updates without a lock), and
// transaction conflicts can be injected.
type dynamo struct {
	writes       sync.Mutex
	conflictRate atomic.Uint64 // a float64's bits
	conflicts    atomic.Int64
}

// dynamoWrites are the write operations, with the share of the conflict rate each gets: a
// transaction the whole rate, a single-item write half of it (as internal/world.DynamoDB).
var dynamoWrites = map[string]float64{
	"TransactWriteItems": 1,
	"PutItem":            0.5,
	"UpdateItem":         0.5,
	"DeleteItem":         0,
	"BatchWriteItem":     0,
}

// InjectConflicts makes about rate (0 to 1) of the DynamoDB transactions (TransactWriteItems),
// and half as many PutItem and UpdateItem calls, fail with a transaction conflict before they
// reach moto, answered as DynamoDB answers a transaction that raced another one on an item:
// TransactionCanceledException with one CancellationReason per item, TransactionConflict for
// one of them and None for the others; TransactionConflictException for a single write. Nothing
// is written then.
func (g *Gateway) InjectConflicts(rate float64) { g.dynamo.conflictRate.Store(math.Float64bits(rate)) }

// Conflicts returns how many conflicts were injected.
func (g *Gateway) Conflicts() int64 { return g.dynamo.conflicts.Load() }

// conflict decides whether this write is refused; scale is the share of the rate it gets.
func (d *dynamo) conflict(scale float64) bool {
	rate := math.Float64frombits(d.conflictRate.Load()) * scale
	if rate <= 0 || rand.Float64() >= rate {
		return false
	}
	d.conflicts.Add(1)
	return true
}

// dynamoWrite handles a DynamoDB write and reports true, or reports false for any other
// operation.
func (g *Gateway) dynamoWrite(w http.ResponseWriter, req *request, log zerolog.Logger) bool {
	scale, ok := dynamoWrites[req.call.Operation]
	if !ok {
		return false
	}
	if g.dynamo.conflict(scale) {
		if req.call.Operation != "TransactWriteItems" {
			log.Info().Msg("awsgateway: injected transaction conflict")
			writeDynamoError(w, req, "TransactionConflictException", map[string]any{"message": "Transaction is ongoing for the item"})
			return true
		}
		if n := transactItems(req); n > 0 {
			log.Info().Int("items", n).Msg("awsgateway: injected transaction conflict")
			writeDynamoError(w, req, "TransactionCanceledException", transactionCancelled(n))
			return true
		}
		// Unreadable or empty: moto answers it as it does.
	}
	g.dynamo.writes.Lock()
	defer g.dynamo.writes.Unlock()
	g.forward(w, req)
	return true
}

// transactItems is the number of items of a TransactWriteItems request, 0 when unreadable.
func transactItems(req *request) int {
	body, err := req.readBody()
	if err != nil {
		return 0
	}
	var doc struct {
		TransactItems []json.RawMessage
	}
	if json.Unmarshal(body, &doc) != nil {
		return 0
	}
	return len(doc.TransactItems)
}

// transactionCancelled is DynamoDB's answer body for a transaction of n items cancelled because
// one of them, picked at random, raced another request: one reason per item, in order.
func transactionCancelled(n int) map[string]any {
	type reason struct {
		Code    string
		Message string `json:",omitempty"`
	}
	reasons := make([]reason, n)
	codes := make([]string, n)
	hit := rand.N(n)
	for i := range reasons {
		reasons[i].Code = "None"
		if i == hit {
			reasons[i] = reason{Code: "TransactionConflict", Message: "Transaction is ongoing for the item"}
		}
		codes[i] = reasons[i].Code
	}
	return map[string]any{
		"Message":             "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]",
		"CancellationReasons": reasons,
	}
}

// writeDynamoError answers a DynamoDB error of type code with the members of body.
func writeDynamoError(w http.ResponseWriter, req *request, code string, body map[string]any) {
	body["__type"] = "com.amazonaws.dynamodb.v20120810#" + code
	b, err := json.Marshal(body)
	if err != nil {
		writeError(w, req, http.StatusInternalServerError, "InternalServerError", "awsgateway: "+err.Error())
		return
	}
	writeBody(w, http.StatusBadRequest, "application/x-amz-json-1.0", requestID(), code, b)
}
