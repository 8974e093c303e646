package awsgateway

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// fault is an injected error for the next left calls of one operation.
type fault struct {
	service, operation string
	left               int
	status             int
	code, message      string
}

// FailCall makes the next n requests of operation on service (its SigV4 signing name: "sqs",
// "dynamodb", "ec2", "ssm", "secretsmanager", "imagebuilder", ...) fail with HTTP status, code
// and message before they reach moto or change anything, answered in the request's protocol:
// {"__type": code, "message": message} with X-Amzn-ErrorType for the JSON protocols, EC2's and
// the query protocol's XML error documents otherwise. For example FailCall("sqs", "SendMessage",
// 1, 400, "ThrottlingException", "Rate exceeded") or FailCall("ec2", "CreateFleet", 1, 503,
// "RequestLimitExceeded", "Request limit exceeded."). Each attempt of the caller's SDK retries
// uses one. Faults queue up: a second FailCall for one operation applies after the first is used
// up.
func (g *Gateway) FailCall(service, operation string, n int, status int, code, message string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faults = append(g.faults, fault{service: strings.ToLower(service), operation: operation, left: n, status: status, code: code, message: message})
}

func (g *Gateway) takeFault(c Call) (fault, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.faults {
		if f := &g.faults[i]; f.left > 0 && f.service == c.Service && f.operation == c.Operation {
			f.left--
			return *f, true
		}
	}
	return fault{}, false
}

// writeError answers an error as the request's service does.
func writeError(w http.ResponseWriter, req *request, status int, code, message string) {
	id := requestID()
	switch req.protocol {
	case protoJSON, protoRESTJSON:
		ct := "application/json"
		if in := req.http.Header.Get("Content-Type"); strings.HasPrefix(in, "application/x-amz-json-") {
			ct = in // the service answers in the version it was asked in (1.0 or 1.1)
		}
		body, _ := json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{code, message})
		writeBody(w, status, ct, id, code, body)
	case protoEC2:
		// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-response
		type ec2Error struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		doc := struct {
			XMLName   xml.Name   `xml:"Response"`
			Errors    []ec2Error `xml:"Errors>Error"`
			RequestID string     `xml:"RequestID"`
		}{Errors: []ec2Error{{code, message}}, RequestID: id}
		writeXML(w, status, id, doc)
	case protoQuery:
		kind := "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		doc := struct {
			XMLName   xml.Name `xml:"ErrorResponse"`
			Type      string   `xml:"Error>Type"`
			Code      string   `xml:"Error>Code"`
			Message   string   `xml:"Error>Message"`
			RequestID string   `xml:"RequestId"`
		}{Type: kind, Code: code, Message: message, RequestID: id}
		writeXML(w, status, id, doc)
	default:
		doc := struct {
			XMLName   xml.Name `xml:"Error"`
			Code      string   `xml:"Code"`
			Message   string   `xml:"Message"`
			RequestID string   `xml:"RequestId"`
		}{Code: code, Message: message, RequestID: id}
		writeXML(w, status, id, doc)
	}
}

// writeBody writes a complete answer; errorType is "" for a success.
func writeBody(w http.ResponseWriter, status int, contentType, id, errorType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amzn-RequestId", id)
	if errorType != "" {
		h.Set("X-Amzn-ErrorType", errorType)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeXML(w http.ResponseWriter, status int, id string, doc any) {
	body, err := xml.Marshal(doc)
	if err != nil { // the documents are the package's own structs: a bug
		http.Error(w, "awsgateway: encode XML: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body = append([]byte(xml.Header), body...)
	writeBody(w, status, "text/xml;charset=UTF-8", id, "", body)
}

// writeJSON answers a JSON document.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "awsgateway: encode JSON: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeBody(w, status, contentType, requestID(), "", body)
}
