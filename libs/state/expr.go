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

// update builds an UpdateExpression with every attribute name and value behind a placeholder
// (several of ours, like "state", are DynamoDB reserved words).
type update struct {
	sets, adds, removes []string
	names               map[string]string
	values              map[string]types.AttributeValue
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// name returns the placeholder path of an attribute path, e.g. "#n0.#n1" for timeline.queued.
func (u *update) name(path ...string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		ph := ""
		for k, v := range u.names {
			if v == p {
				ph = k
				break
			}
		}
		if ph == "" {
			ph = fmt.Sprintf("#n%d", len(u.names))
			u.names[ph] = p
		}
		parts[i] = ph
	}
	return strings.Join(parts, ".")
}

// value returns the placeholder of a value.
func (u *update) value(v types.AttributeValue) string {
	ph := fmt.Sprintf(":v%d", len(u.values))
	u.values[ph] = v
	return ph
}

func (u *update) set(v types.AttributeValue, path ...string) {
	u.sets = append(u.sets, u.name(path...)+" = "+u.value(v))
}

func (u *update) add(v types.AttributeValue, path ...string) {
	u.adds = append(u.adds, u.name(path...)+" "+u.value(v))
}

func (u *update) remove(path ...string) { u.removes = append(u.removes, u.name(path...)) }

func (u *update) expression() string {
	var parts []string
	if len(u.sets) > 0 {
		parts = append(parts, "SET "+strings.Join(u.sets, ", "))
	}
	if len(u.adds) > 0 {
		parts = append(parts, "ADD "+strings.Join(u.adds, ", "))
	}
	if len(u.removes) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(u.removes, ", "))
	}
	return strings.Join(parts, " ")
}

// in returns the condition "attr IN (:a, :b)" for string values.
func (u *update) in(attr string, vals ...string) string {
	phs := make([]string, len(vals))
	for i, v := range vals {
		phs[i] = u.value(str(v))
	}
	return u.name(attr) + " IN (" + strings.Join(phs, ", ") + ")"
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}
}

// get reads item (pk, sk) into out, strongly consistent; what names the item in errors.
func (s *Store) get(ctx context.Context, pk, sk, what string, out any) error {
	res, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(pk, sk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("get %s: %w", what, err)
	}
	if res.Item == nil {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err := attributevalue.UnmarshalMap(res.Item, out); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}
