package ghessim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// delivery is one attempt at sending a webhook, as GitHub records it.
type delivery struct {
	id                           int64
	guid, event, action          string // action is empty for events without one (ping)
	installationID, repositoryID int64  // 0 when the event has none
	url                          string
	payload                      []byte
	redelivery                   bool

	deliveredAt     time.Time
	duration        time.Duration
	statusCode      int
	status          string
	requestHeaders  map[string]string
	responseHeaders map[string]string
	responseBody    string
}

// deliveryItemJSON is GitHub's hook-delivery-item.
type deliveryItemJSON struct {
	ID             int64   `json:"id"`
	GUID           string  `json:"guid"`
	DeliveredAt    string  `json:"delivered_at"`
	Redelivery     bool    `json:"redelivery"`
	Duration       float64 `json:"duration"`
	Status         string  `json:"status"`
	StatusCode     int     `json:"status_code"`
	Event          string  `json:"event"`
	Action         *string `json:"action"`
	InstallationID *int64  `json:"installation_id"`
	RepositoryID   *int64  `json:"repository_id"`
	ThrottledAt    *string `json:"throttled_at"`
}

// deliveryJSON is GitHub's hook-delivery.
type deliveryJSON struct {
	deliveryItemJSON
	URL     string `json:"url"`
	Request struct {
		Headers map[string]string `json:"headers"`
		Payload json.RawMessage   `json:"payload"`
	} `json:"request"`
	Response struct {
		Headers map[string]string `json:"headers"`
		Payload *string           `json:"payload"`
	} `json:"response"`
}

func (d *delivery) item() deliveryItemJSON {
	out := deliveryItemJSON{
		ID:          d.id,
		GUID:        d.guid,
		DeliveredAt: timestamp(d.deliveredAt),
		Redelivery:  d.redelivery,
		Duration:    d.duration.Seconds(),
		Status:      d.status,
		StatusCode:  d.statusCode,
		Event:       d.event,
	}
	if d.action != "" {
		out.Action = ptr(d.action)
	}
	if d.installationID != 0 {
		out.InstallationID = ptr(d.installationID)
	}
	if d.repositoryID != 0 {
		out.RepositoryID = ptr(d.repositoryID)
	}
	return out
}

func (d *delivery) detail() deliveryJSON {
	out := deliveryJSON{deliveryItemJSON: d.item(), URL: d.url}
	out.Request.Headers, out.Request.Payload = d.requestHeaders, d.payload
	out.Response.Headers = d.responseHeaders
	if d.responseHeaders != nil { // nil when the receiver never answered
		out.Response.Payload = ptr(d.responseBody)
	}
	return out
}

// cursorPrefix starts the opaque cursors of the deliveries list; the rest is the id of the first
// delivery of the page.
const cursorPrefix = "v1_"

// listDeliveries answers newest first, per_page at a time, with a Link rel="next" carrying the
// cursor of the next page, as GitHub does.
func (s *Server) listDeliveries(r *http.Request) reply {
	q := r.URL.Query()
	perPage := min(queryInt(q.Get("per_page"), defaultPerPage), maxPerPage)
	from := int64(-1) // no cursor: from the newest
	if c := q.Get("cursor"); c != "" {
		id, err := strconv.ParseInt(strings.TrimPrefix(c, cursorPrefix), 10, 64)
		if err != nil || !strings.HasPrefix(c, cursorPrefix) {
			return errorReply(http.StatusBadRequest, "Bad request - invalid cursor")
		}
		from = id
	}
	keep, msg := statusFilter(q.Get("status"))
	if msg != "" {
		return unprocessable(msg)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	items := []deliveryItemJSON{}
	var next int64
	for i := len(s.deliveries) - 1; i >= 0; i-- {
		d := s.deliveries[i]
		if (from >= 0 && d.id > from) || !keep(d.statusCode) {
			continue
		}
		if len(items) == perPage {
			next = d.id
			break
		}
		items = append(items, d.item())
	}
	rp := okReply(items)
	if next != 0 {
		link := s.linkBase(r) + "?" + url.Values{"per_page": {strconv.Itoa(perPage)}, "cursor": {cursorPrefix + strconv.FormatInt(next, 10)}}.Encode()
		rp.header = http.Header{"Link": {fmt.Sprintf("<%s>; rel=\"next\"", link)}}
	}
	return rp
}

// linkBase is the deliveries URL as the client reached it, so that a Link can be followed.
func (s *Server) linkBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + apiPrefix + "/app/hook/deliveries"
}

// statusFilter implements the status query parameter: success is 200-399, failure 400-599.
func statusFilter(v string) (keep func(code int) bool, msg string) {
	switch v {
	case "":
		return func(int) bool { return true }, ""
	case "success":
		return func(code int) bool { return code >= 200 && code <= 399 }, ""
	case "failure":
		return func(code int) bool { return code >= 400 && code <= 599 }, ""
	}
	return nil, fmt.Sprintf("Invalid request.\n\n%q is not a valid value for status (success, failure).", v)
}

// deliveryByID returns the delivery with that id, or nil; the caller holds s.mu.
func (s *Server) deliveryByID(id int64) *delivery {
	for _, d := range s.deliveries {
		if d.id == id {
			return d
		}
	}
	return nil
}

func (s *Server) getDelivery(r *http.Request) reply {
	id, ok := pathID(r, "delivery_id")
	if !ok {
		return notFound()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deliveryByID(id)
	if d == nil {
		return notFound()
	}
	return okReply(d.detail())
}

// redeliver sends a recorded delivery again: same GUID and payload, a new delivery id, flagged
// redelivery. GitHub queues it and answers 202; the simulator delivers before answering, so that
// a test sees the redelivery as soon as the call returns. Its outcome goes to the record, not to
// the caller, as on GitHub.
func (s *Server) redeliver(r *http.Request) reply {
	id, ok := pathID(r, "delivery_id")
	if !ok {
		return notFound()
	}
	s.mu.Lock()
	orig := s.deliveryByID(id)
	s.mu.Unlock()
	if orig == nil {
		return notFound()
	}
	again := &delivery{guid: orig.guid, event: orig.event, action: orig.action, installationID: orig.installationID,
		repositoryID: orig.repositoryID, url: orig.url, payload: orig.payload, redelivery: true}
	// GitHub's redelivery does not depend on the caller staying connected.
	_, _ = s.deliver(context.WithoutCancel(r.Context()), again)
	return reply{status: http.StatusAccepted, body: struct{}{}}
}
