// Command echo is the test Lambda of package lambdasim, built with -tags lambda.norpc and run
// under aws-lambda-rie like the services. What it does with an event, by its shape:
//  1. an API Gateway HTTP API event (has routeKey): answers 200 with the event it received as the
//     body, or the status in header x-echo-status; a header x-echo-error makes it fail instead;
//  2. an SQS event (has Records): reports as failed every record whose body contains "fail";
//     a record with body "crash" fails the whole invocation; one whose body starts with "slow"
//     takes 300 ms;
//  3. anything else is a control document ({"sleep":"100ms","error":"...","panic":true,
//     "env":["NAME"]}): it sleeps, then fails, panics, or answers what it received, its pid,
//     the named environment variables and its remaining time.
//
// With ECHO_RECORD set, it first appends each event it receives to that file, one JSON line
// {"atMs": <unix ms>, "event": <the event>}.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type control struct {
	Sleep string   `json:"sleep"`
	Error string   `json:"error"`
	Panic bool     `json:"panic"`
	Exit  bool     `json:"exit"`
	Env   []string `json:"env"`
}

// Reply is what a control document gets back.
type Reply struct {
	Received    json.RawMessage   `json:"received"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env,omitempty"`
	RemainingMs int64             `json:"remainingMs"`
	FunctionARN string            `json:"functionArn"`
	RequestID   string            `json:"requestId"`
}

func main() {
	lambda.Start(handle)
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	if path := os.Getenv("ECHO_RECORD"); path != "" {
		if err := record(path, raw); err != nil {
			return nil, err
		}
	}
	var probe struct {
		RouteKey *string          `json:"routeKey"`
		Records  *json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	switch {
	case probe.RouteKey != nil:
		return handleHTTP(raw)
	case probe.Records != nil:
		return handleSQS(raw)
	}
	var c control
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode control: %w", err)
	}
	if c.Sleep != "" {
		d, err := time.ParseDuration(c.Sleep)
		if err != nil {
			return nil, err
		}
		time.Sleep(d)
	}
	switch {
	case c.Panic:
		panic("echo: asked to panic")
	case c.Exit:
		os.Exit(3)
	case c.Error != "":
		return nil, errors.New(c.Error)
	}
	r := Reply{Received: raw, PID: os.Getpid(), Env: map[string]string{}}
	for _, name := range c.Env {
		r.Env[name] = os.Getenv(name)
	}
	if dl, ok := ctx.Deadline(); ok {
		r.RemainingMs = time.Until(dl).Milliseconds()
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.FunctionARN, r.RequestID = lc.InvokedFunctionArn, lc.AwsRequestID
	}
	return r, nil
}

func handleHTTP(raw json.RawMessage) (events.APIGatewayV2HTTPResponse, error) {
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if msg := req.Headers["x-echo-error"]; msg != "" {
		return events.APIGatewayV2HTTPResponse{}, errors.New(msg)
	}
	status := 200
	if s := req.Headers["x-echo-status"]; s != "" {
		status, _ = strconv.Atoi(s)
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    map[string]string{"content-type": "application/json", "x-echo": "yes"},
		Body:       string(raw),
	}, nil
}

func handleSQS(raw json.RawMessage) (events.SQSEventResponse, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return events.SQSEventResponse{}, err
	}
	var out events.SQSEventResponse
	for _, r := range ev.Records {
		switch {
		case r.Body == "crash":
			return out, errors.New("echo: asked to crash the batch")
		case strings.HasPrefix(r.Body, "slow"):
			time.Sleep(300 * time.Millisecond)
		}
		if strings.Contains(r.Body, "fail") {
			out.BatchItemFailures = append(out.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	return out, nil
}

// record appends raw to path as one line, in one write (O_APPEND keeps lines of concurrent
// instances whole).
func record(path string, raw json.RawMessage) error {
	var event bytes.Buffer
	if err := json.Compact(&event, raw); err != nil {
		return err
	}
	line, err := json.Marshal(struct {
		AtMs  int64           `json:"atMs"`
		Event json.RawMessage `json:"event"`
	}{time.Now().UnixMilli(), event.Bytes()})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
