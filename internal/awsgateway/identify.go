package awsgateway

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// protocol is how a request is encoded, and so how an error must be answered.
type protocol int

const (
	protoJSON     protocol = iota // awsJson 1.0/1.1: X-Amz-Target (DynamoDB, SSM, Secrets Manager, SQS)
	protoEC2                      // ec2Query: Action= form, EC2's error document
	protoQuery                    // awsQuery: Action= form (STS, IAM, SQS before its JSON protocol)
	protoRESTJSON                 // restJson1 (Image Builder)
	protoRESTXML                  // restXml (S3) and anything unrecognised
)

// request is one incoming request with what identify read from it.
type request struct {
	http     *http.Request
	call     Call
	region   string // of the SigV4 credential scope; "" when unsigned
	protocol protocol
	form     url.Values // the query form, for the query protocols
	body     []byte     // the body, once read (readBody); nil while it still streams
}

// targetServices maps X-Amz-Target prefixes to signing names, for unsigned JSON requests.
var targetServices = map[string]string{
	"DynamoDB_20120810":                    "dynamodb",
	"AmazonSSM":                            "ssm",
	"secretsmanager":                       "secretsmanager",
	"AmazonSQS":                            "sqs",
	"AWSEvents":                            "events",
	"Logs_20140328":                        "logs",
	"AmazonEC2ContainerRegistry_V20150921": "ecr",
}

// restJSONServices are the signing names of the restJson1 services the world talks to.
var restJSONServices = map[string]bool{"imagebuilder": true, "lambda": true, "apigateway": true, "execute-api": true}

// identify reads the service, operation and protocol of r. It reads the body only for the query
// protocols (the operation is in it), and puts it back for whoever reads it next.
func identify(r *http.Request) (*request, error) {
	req := &request{http: r, protocol: protoRESTXML}
	req.region, req.call.Service = credentialScope(r)

	if target := r.Header.Get("X-Amz-Target"); target != "" {
		prefix, op, _ := strings.Cut(target, ".")
		req.protocol, req.call.Operation = protoJSON, op
		if req.call.Service == "" {
			req.call.Service = targetServices[prefix]
		}
		return req, nil
	}
	if isForm(r) || r.URL.Query().Get("Action") != "" {
		req.protocol = protoQuery
		if req.call.Service == "ec2" {
			req.protocol = protoEC2
		}
		body, err := req.readBody()
		if err != nil {
			return req, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return req, fmt.Errorf("query form: %w", err)
		}
		for k, v := range r.URL.Query() {
			form[k] = append(form[k], v...)
		}
		req.form, req.call.Operation = form, form.Get("Action")
		return req, nil
	}
	if restJSONServices[req.call.Service] || strings.Contains(r.Header.Get("Content-Type"), "json") {
		req.protocol = protoRESTJSON
	}
	if req.call.Service == "imagebuilder" {
		req.call.Operation, _, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	}
	return req, nil
}

// credentialScope returns the region and service of the SigV4 credential scope
// (Credential=AKID/20261202/us-east-1/ec2/aws4_request), from the Authorization header or, for a
// presigned URL, X-Amz-Credential; empty when the request is not signed.
func credentialScope(r *http.Request) (region, service string) {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "AWS4-") {
		_, rest, ok := strings.Cut(auth, "Credential=")
		if !ok {
			return "", ""
		}
		cred, _, _ = strings.Cut(rest, ",")
	}
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return "", ""
	}
	return parts[2], parts[3]
}

func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// readBody reads the whole body once (at most maxBuffered bytes) and leaves a copy in its place.
func (req *request) readBody() ([]byte, error) {
	if req.body != nil {
		return req.body, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.http.Body, maxBuffered+1))
	_ = req.http.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if len(b) > maxBuffered {
		return nil, fmt.Errorf("request body over %d bytes", maxBuffered)
	}
	req.setBody(b)
	return b, nil
}

// setBody replaces the body moto will get.
func (req *request) setBody(b []byte) {
	if b == nil {
		b = []byte{}
	}
	req.body = b
	req.http.Body = io.NopCloser(bytes.NewReader(b))
	req.http.ContentLength = int64(len(b))
	req.http.Header.Set("Content-Length", strconv.Itoa(len(b)))
	req.http.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
