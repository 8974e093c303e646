package githubapp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-github/v84/github"
)

// Delivery is one attempt by GitHub at sending the App's webhook. A redelivery is another
// attempt with the GUID of the original (the X-GitHub-Delivery header) and its own ID.
type Delivery struct {
	ID          int64
	GUID        string
	Event       string // "workflow_job", "ping", ...
	Action      string // "" for events without one
	StatusCode  int    // the receiver's HTTP status, or GitHub's code for no answer: not 2xx is a failure
	Redelivery  bool
	DeliveredAt time.Time
}

// Succeeded reports whether the receiver took the delivery (a 2xx answer).
func (d Delivery) Succeeded() bool { return d.StatusCode >= 200 && d.StatusCode <= 299 }

// deliveriesPerPage is the most GitHub lists at a time.
const deliveriesPerPage = 100

// Deliveries lists the App's webhook deliveries delivered at or after since, newest first
// (GET /app/hook/deliveries, as the App). GitHub lists newest first, so paging stops at the first
// delivery older than since: the calls made grow with the deliveries of the window, not with the
// days GitHub keeps. Failures are those of Describe.
func (a *App) Deliveries(ctx context.Context, since time.Time) ([]Delivery, error) {
	c, err := a.asApp(ctx)
	if err != nil {
		return nil, err
	}
	var out []Delivery
	opts := &github.ListCursorOptions{PerPage: deliveriesPerPage}
	for {
		page, resp, err := c.Apps.ListHookDeliveries(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list webhook deliveries of github app %d: %w", a.cfg.AppID, classifyAppJWT(err))
		}
		for _, d := range page {
			if d.GetDeliveredAt().Before(since) {
				return out, nil
			}
			out = append(out, Delivery{
				ID: d.GetID(), GUID: d.GetGUID(), Event: d.GetEvent(), Action: d.GetAction(),
				StatusCode: d.GetStatusCode(), Redelivery: d.GetRedelivery(), DeliveredAt: d.GetDeliveredAt().Time,
			})
		}
		if resp.Cursor == "" || len(page) == 0 {
			return out, nil
		}
		opts.Cursor = resp.Cursor
	}
}

// Redeliver asks GitHub to send delivery id again (POST /app/hook/deliveries/{id}/attempts, as the
// App). GitHub queues the attempt and answers 202; how it went shows in Deliveries later, as a
// delivery with the same GUID flagged Redelivery. A delivery GitHub no longer keeps is ErrNotFound;
// other failures are those of Describe.
func (a *App) Redeliver(ctx context.Context, id int64) error {
	c, err := a.asApp(ctx)
	if err != nil {
		return err
	}
	_, _, err = c.Apps.RedeliverHookDelivery(ctx, id)
	var accepted *github.AcceptedError
	if err == nil || errors.As(err, &accepted) {
		return nil
	}
	return fmt.Errorf("redeliver webhook delivery %d of github app %d: %w", id, a.cfg.AppID, classifyAppJWT(err))
}
