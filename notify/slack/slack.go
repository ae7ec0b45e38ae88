// Package slack posts notifications to a Slack incoming webhook: one
// message per group, with blocks (the status as the attachment colour, the
// credential, consumer, run and runbook links) and, for a burst, a summary
// that names every credential of the group.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/notify"
)

// Type is the receiver type name in configuration.
const Type = "slack"

// Slack's limits: 50 blocks per message, 3000 characters per section text.
const (
	maxBlocks      = 50
	maxSectionText = 2900
	// detailed is how many events a message shows one by one; a larger
	// group is summarised.
	detailed = 5
)

// Colours of the attachment bar by severity.
var colours = map[string]string{"critical": "#d00000", "warning": "#e8a317", "ok": "#2eb67d", "info": "#439fe0"}

// Receiver posts to one incoming webhook.
type Receiver struct {
	name   string
	cfg    Config
	client *http.Client
	req    notify.NewRequest
}

// Factory returns the Slack factory for notify/registry.
func Factory() notify.Factory {
	return notify.Factory{
		Validate: func(s settings.Map) settings.Errors { _, errs := parse(s, false); return errs },
		New:      New,
	}
}

// New builds a receiver from resolved settings.
func New(req notify.NewRequest) (notify.Receiver, error) {
	cfg, errs := parse(req.Settings, true)
	if len(errs) > 0 {
		return nil, notify.SettingsError(req.Name, errs)
	}
	client := req.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Receiver{name: req.Name, cfg: cfg, client: client, req: req}, nil
}

// Payload is an incoming-webhook message.
type Payload struct {
	Text        string       `json:"text"`
	Username    string       `json:"username,omitempty"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment carries the colour bar and the blocks.
type Attachment struct {
	Color  string  `json:"color"`
	Blocks []Block `json:"blocks"`
}

// Block is a Block Kit block (header, section, context, divider).
type Block struct {
	Type     string `json:"type"`
	Text     *Text  `json:"text,omitempty"`
	Fields   []Text `json:"fields,omitempty"`
	Elements []Text `json:"elements,omitempty"`
	BlockID  string `json:"block_id,omitempty"`
}

// Text is a text object.
type Text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func md(s string) Text    { return Text{Type: "mrkdwn", Text: s} }
func plain(s string) Text { return Text{Type: "plain_text", Text: s} }

// escape escapes Slack's control characters.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Render builds the payload of a message.
func Render(msg notify.Message, username string) Payload {
	sev := "info"
	rank := map[string]int{"info": 0, "ok": 1, "warning": 2, "critical": 3}
	kinds := map[notify.Kind]int{}
	for _, ev := range msg.Events {
		if s := ev.Kind.Severity(); rank[s] > rank[sev] {
			sev = s
		}
		kinds[ev.Kind]++
	}
	var title string
	if len(msg.Events) == 1 {
		title = msg.Events[0].Summary
	} else {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
		}
		title = fmt.Sprintf("rotator: %d events (%s)", len(msg.Events), strings.Join(parts, ", "))
	}
	blocks := []Block{{Type: "header", Text: ptr(plain(truncate(title, 150)))}}
	if len(msg.Events) <= detailed {
		for _, ev := range msg.Events {
			blocks = append(blocks, eventBlocks(ev)...)
		}
	} else {
		blocks = append(blocks, summaryBlocks(msg.Events)...)
	}
	blocks = append(blocks, Block{Type: "context", Elements: []Text{md("delivery " + msg.DeliveryID + " · " + escape(msg.GroupKey))}})
	return Payload{Text: title, Username: username, Attachments: []Attachment{{Color: colours[sev], Blocks: blocks}}}
}

func eventBlocks(ev notify.Event) []Block {
	fields := []Text{md("*Event*\n`" + string(ev.Kind) + "`")}
	if ev.CredentialID != "" {
		fields = append(fields, md("*Credential*\n`"+escape(ev.CredentialID)+"`"))
	}
	if ev.Consumer != "" {
		fields = append(fields, md("*Consumer*\n"+escape(ev.Consumer)))
	}
	if ev.RunID != "" {
		run := "`" + ev.RunID + "`"
		if ev.Links != nil && ev.Links.Run != "" {
			run = "<" + ev.Links.Run + "|" + ev.RunID + ">"
		}
		fields = append(fields, md("*Run*\n"+run))
	}
	if ev.Runbook != "" {
		rb := escape(ev.Runbook)
		if ev.Links != nil && ev.Links.Runbook != "" {
			rb = "<" + ev.Links.Runbook + "|" + rb + ">"
		}
		fields = append(fields, md("*Runbook*\n"+rb))
	}
	if ev.NewVersion != nil {
		fields = append(fields, md("*New version*\n`"+ev.NewVersion.ID+"` ("+ev.NewVersion.Fingerprint+")"))
	}
	out := []Block{{Type: "section", Text: ptr(md(truncate(escape(ev.Summary), maxSectionText))), Fields: fields[:min(len(fields), 10)]}}
	if ev.Reason != "" && ev.Reason != ev.Summary {
		out = append(out, Block{Type: "context", Elements: []Text{md(truncate(escape(ev.Reason), maxSectionText))}})
	}
	return out
}

// summaryBlocks names every credential of a burst, by kind, packed into
// sections of at most maxSectionText characters. Nothing is dropped: a
// group too large for one message is split by the dispatcher
// (max_events).
func summaryBlocks(evs []notify.Event) []Block {
	byKind := map[notify.Kind][]string{}
	for _, ev := range evs {
		name := ev.CredentialID
		if name == "" {
			name = ev.Summary
		}
		byKind[ev.Kind] = append(byKind[ev.Kind], "`"+escape(name)+"`")
	}
	var out []Block
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		names := byKind[k]
		head := fmt.Sprintf("*%s* (%d):\n", k, len(names))
		var b strings.Builder
		b.WriteString(head)
		for i, n := range names {
			if b.Len()+len(n)+2 > maxSectionText {
				out = append(out, Block{Type: "section", Text: ptr(md(b.String()))})
				b.Reset()
			}
			if i > 0 && b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(n)
		}
		out = append(out, Block{Type: "section", Text: ptr(md(b.String()))})
	}
	if len(out) > maxBlocks-3 {
		out = out[:maxBlocks-3]
	}
	return out
}

// Notify posts msg once.
func (r *Receiver) Notify(ctx context.Context, msg notify.Message) (bool, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // Slack's links are <url|text>
	if err := enc.Encode(Render(msg, r.cfg.Username)); err != nil {
		return false, fmt.Errorf("receiver %s: encoding the message: %w", r.name, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, string(r.cfg.URL.Reveal()), &body)
	if err != nil {
		return false, fmt.Errorf("receiver %s: the configured url is not a valid URL", r.name)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(hreq)
	if err != nil {
		return notify.PostError(ctx, r.name, err)
	}
	retry, err := notify.CheckResponse(resp, r.req.Clock()())
	if err != nil {
		return retry, fmt.Errorf("receiver %s: %w", r.name, err)
	}
	return false, nil
}

func ptr[T any](v T) *T { return &v }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

var _ notify.Receiver = (*Receiver)(nil)
