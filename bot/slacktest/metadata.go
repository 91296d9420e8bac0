package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxEventType bounds metadata's event_type.
const maxEventType = 255

// checkMetadata reads the metadata parameter of chat.postMessage and
// chat.update: a JSON object (a string in form bodies, an object or a string
// in JSON bodies, which parseAPIRequest flattens alike) with a non-empty
// string event_type and an object event_payload. It returns the stored form,
// nil when the parameter is absent or empty.
//
// invalid_metadata_format refuses the call. invalid_metadata_schema is what
// Slack does with an event_type outside letters, digits, underscores and
// hyphens (no periods): the message is posted, the metadata silently
// dropped, and the answer carries only a warning — the caller records it.
func checkMetadata(raw string) (meta json.RawMessage, code, detail string) {
	if strings.TrimSpace(raw) == "" {
		return nil, "", ""
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m == nil {
		return nil, "invalid_metadata_format", "metadata is not a JSON object"
	}
	var eventType string
	if rawType, ok := m["event_type"]; !ok {
		return nil, "invalid_metadata_format", "metadata has no event_type"
	} else if err := json.Unmarshal(rawType, &eventType); err != nil || bytes.Equal(bytes.TrimSpace(rawType), []byte("null")) {
		return nil, "invalid_metadata_format", "event_type is not a string"
	}
	if eventType == "" {
		return nil, "invalid_metadata_format", "event_type is empty"
	}
	payload := bytes.TrimSpace(m["event_payload"])
	var obj map[string]json.RawMessage
	if len(payload) == 0 || payload[0] != '{' || json.Unmarshal(payload, &obj) != nil {
		return nil, "invalid_metadata_format", "event_payload is not a JSON object"
	}
	if n := utf8.RuneCountInString(eventType); n > maxEventType {
		return nil, "invalid_metadata_schema", fmt.Sprintf("event_type has %d characters, more than %d", n, maxEventType)
	}
	if i := strings.IndexFunc(eventType, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}); i >= 0 {
		r, _ := utf8.DecodeRuneInString(eventType[i:])
		return nil, "invalid_metadata_schema", fmt.Sprintf("event_type %q has %q: only letters, digits, _ and - are allowed", eventType, r)
	}
	var buf bytes.Buffer
	_ = json.Compact(&buf, payload)
	out, _ := json.Marshal(struct {
		EventType    string          `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}{eventType, buf.Bytes()})
	return out, "", ""
}
