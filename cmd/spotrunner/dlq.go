package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/spf13/cobra"

	"github.com/spotrunner/spotrunner/libs/queue"
)

// dlqMessage is one dead-letter message as the CLI shows it.
type dlqMessage struct {
	MessageID string    `json:"messageId"`
	Group     string    `json:"messageGroupId"`
	SentAt    time.Time `json:"sentAt"`
	Receives  int       `json:"receives"`
	Host      string    `json:"host,omitempty"`
	JobID     int64     `json:"jobId,omitempty"`
	Action    string    `json:"action,omitempty"`
	Repo      string    `json:"repo,omitempty"`
	Retry     int       `json:"retry,omitempty"`
	// Malformed says why the body is not a job message (it would be dropped if redriven).
	Malformed string `json:"malformed,omitempty"`
}

func dlqView(m types.Message) dlqMessage {
	v := dlqMessage{MessageID: aws.ToString(m.MessageId), Group: m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		v.SentAt = time.UnixMilli(ms).UTC()
	}
	v.Receives, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	msg, err := queue.Decode([]byte(aws.ToString(m.Body)))
	if err != nil {
		v.Malformed = err.Error()
		return v
	}
	v.Host, v.JobID, v.Action, v.Repo, v.Retry = msg.Host, msg.JobID, msg.Action, msg.Owner+"/"+msg.Repo, msg.Retry
	return v
}

func (a *app) dlqCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List the dead-letter queue and redrive it",
		Long: `The dead-letter queue holds job messages the provisioner gave up on (20 receives), such
as a job whose preset was broken. List them, fix the cause, then redrive them to the job queue.`,
	}
	cmd.AddCommand(a.dlqListCommand(), a.dlqRedriveCommand())
	return cmd
}

func (a *app) dlqListCommand() *cobra.Command {
	var max int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the messages in the dead-letter queue",
		Long: `List the messages in the dead-letter queue: job, action, message group, when first sent
and how often received. Listing receives each message and makes it visible again at once; it
moves and deletes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, msgs, err := a.redrive(cmd, max, true, "reading the dead-letter queue")
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, msgs)
			}
			return writeDLQ(a.stdout, msgs)
		},
	}
	cmd.Flags().IntVar(&max, "max", 0, "at most this many messages (0: all)")
	return cmd
}

func writeDLQ(w io.Writer, msgs []dlqMessage) error {
	if len(msgs) == 0 {
		_, err := fmt.Fprintln(w, "The dead-letter queue is empty.")
		return err
	}
	t := newTable(w, "MESSAGE", "JOB", "ACTION", "REPO", "GROUP", "SENT", "RECEIVES")
	for _, m := range msgs {
		job := fmt.Sprintf("%s/%d", m.Host, m.JobID)
		if m.Malformed != "" {
			job = "malformed: " + m.Malformed
		}
		t.row(m.MessageID, job, m.Action, m.Repo, m.Group, timestamp(m.SentAt), strconv.Itoa(m.Receives))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d %s.\n", len(msgs), plural(len(msgs), "message", "messages"))
	return err
}

func (a *app) dlqRedriveCommand() *cobra.Command {
	var (
		max    int
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "redrive",
		Short: "Move the dead-letter queue's messages back to the job queue",
		Long: `Move the dead-letter queue's messages back to the job queue, FIFO-safe: each message is
sent with its message group id and a new deduplication id (SQS would drop the first one as a
duplicate), and deleted from the dead-letter queue only after it was sent. Interrupted and run
again, nothing is lost and nothing doubled: a message not yet deleted is sent again with the
same deduplication id, and the job's state makes a later duplicate a no-op.

Fix the cause first (see spotrunner jobs show <job-id>): a message that fails again returns to
the dead-letter queue after its receives.`,
		Example: `  spotrunner dlq redrive --dry-run
  spotrunner dlq redrive --max 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			verb := "moved"
			if dryRun {
				verb = "would move"
			}
			moved, msgs, err := a.redrive(cmd, max, dryRun, "redriving")
			if err != nil && len(msgs) == 0 {
				return err // nothing moved: only the error to report
			}
			if a.output == "json" {
				if jerr := writeJSON(a.stdout, struct {
					DryRun   bool         `json:"dryRun"`
					Moved    int          `json:"moved"`
					Messages []dlqMessage `json:"messages"`
					Error    string       `json:"error,omitempty"`
				}{dryRun, moved, msgs, errText(err)}); jerr != nil {
					return jerr
				}
				return err
			}
			for _, m := range msgs {
				if m.Malformed != "" {
					fmt.Fprintf(a.stdout, "%s message %s (group %s): %s\n", verb, m.MessageID, m.Group, m.Malformed)
					continue
				}
				fmt.Fprintf(a.stdout, "%s %s/%d %s (group %s)\n", verb, m.Host, m.JobID, m.Action, m.Group)
			}
			fmt.Fprintf(a.stdout, "%s %d %s.\n", capitalize(verb), moved, plural(moved, "message", "messages"))
			return err
		},
	}
	cmd.Flags().IntVar(&max, "max", 0, "move at most this many messages (0: all)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be moved; move nothing")
	return cmd
}

// redrive runs queue.Redrive from the DLQ to the job queue (with dryRun, only reading: what
// dlq list shows) with a progress line, and returns what it moved (or would move).
func (a *app) redrive(cmd *cobra.Command, max int, dryRun bool, doing string) (int, []dlqMessage, error) {
	ctx := cmd.Context()
	if max < 0 {
		return 0, nil, usagef("--max %d: want 0 (all) or more", max)
	}
	dlq, err := a.resource(ctx, &a.dlqURL, "dlq-url", "JobDeadLetterQueueUrl")
	if err != nil {
		return 0, nil, err
	}
	jobs, err := a.resource(ctx, &a.queueURL, "queue-url", "JobQueueUrl")
	if err != nil {
		return 0, nil, err
	}
	cfg, err := a.awsConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	msgs := []dlqMessage{}
	p := startProgress(a.stderr, doing)
	defer p.stop()
	moved, err := queue.Redrive(ctx, sqs.NewFromConfig(cfg), queue.RedriveOptions{DLQ: dlq, Queue: jobs, Max: max, DryRun: dryRun, Moved: func(m types.Message) {
		msgs = append(msgs, dlqView(m))
		p.set("%s: %d messages", doing, len(msgs))
	}})
	return moved, msgs, err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
