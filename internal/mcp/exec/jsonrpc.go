package exec

import (
	"bytes"
	"encoding/json"
)

// kind is what a JSON-RPC message is.
type kind int

const (
	// kindOther: not a JSON-RPC message exec understands (invalid JSON, or
	// an object with neither method nor id); passed on untouched.
	kindOther kind = iota
	kindRequest
	kindNotification
	kindResponse
)

// MCP methods exec gives a meaning to.
const (
	methodInitialize          = "initialize"
	methodInitialized         = "notifications/initialized"
	methodCancelled           = "notifications/cancelled"
	methodSetLevel            = "logging/setLevel"
	methodSubscribe           = "resources/subscribe"
	methodUnsubscribe         = "resources/unsubscribe"
	methodSubscriptionsListen = "subscriptions/listen"
	methodSubscriptionsAck    = "notifications/subscriptions/acknowledged"
	// metaSubscriptionID names, in a notification's _meta, the
	// subscriptions/listen request it belongs to (SEP-2575).
	metaSubscriptionID = "io.modelcontextprotocol/subscriptionId"
)

// message is one JSON-RPC message of a line, with what exec tracks of it.
// Values are never looked at: only ids, methods and a few parameters.
type message struct {
	kind   kind
	id     string // compact JSON of the id ("" when absent or null)
	method string
	// ref is, for notifications/cancelled, the request it cancels; for
	// notifications/subscriptions/acknowledged, the subscriptions/listen
	// request it acknowledges; for resources/(un)subscribe, the uri.
	ref string
}

// wire is the part of a JSON-RPC message exec decodes.
type wire struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		RequestID json.RawMessage            `json:"requestId"`
		URI       string                     `json:"uri"`
		Meta      map[string]json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// parseLine decodes the messages of one line: one object, or a batch (an
// array of objects, as the 2025-03-26 revision allowed).
func parseLine(line []byte) []message {
	t := bytes.TrimLeft(line, " \t\r")
	if len(t) > 0 && t[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(t, &batch); err != nil {
			return []message{{kind: kindOther}}
		}
		out := make([]message, 0, len(batch))
		for _, raw := range batch {
			out = append(out, parseMessage(raw))
		}
		return out
	}
	return []message{parseMessage(t)}
}

func parseMessage(raw []byte) message {
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return message{kind: kindOther}
	}
	m := message{id: compactID(w.ID), method: w.Method}
	switch {
	case w.Method != "" && m.id != "":
		m.kind = kindRequest
	case w.Method != "":
		m.kind = kindNotification
	case m.id != "":
		m.kind = kindResponse
	default:
		return message{kind: kindOther}
	}
	switch w.Method {
	case methodCancelled:
		m.ref = compactID(w.Params.RequestID)
	case methodSubscriptionsAck:
		m.ref = compactID(w.Params.Meta[metaSubscriptionID])
	case methodSubscribe, methodUnsubscribe:
		m.ref = w.Params.URI
	}
	return m
}

// compactID returns an id's JSON in a canonical form, so that 7 and 7.0
// differ (as JSON-RPC says) but whitespace does not; "" for none or null.
func compactID(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil || b.String() == "null" {
		return ""
	}
	return b.String()
}

// errorResponse is the JSON-RPC error answer exec gives, for a request
// whose server was stopped before it answered, so the client does not wait
// for ever.
func errorResponse(id, msg string) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: json.RawMessage(id), Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{Code: -32603, Message: msg}})
	return b
}
