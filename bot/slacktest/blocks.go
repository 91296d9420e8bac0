package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Block Kit limits Slack enforces when a message is posted. A bot that breaks
// one gets invalid_blocks in production, so the fake refuses it the same way,
// with Slack's "[json-pointer:…]" style of detail.
const (
	maxBlocks          = 50
	maxBlockID         = 255
	maxActionID        = 255
	maxSectionText     = 3000
	maxSectionFields   = 10
	maxFieldText       = 2000
	maxHeaderText      = 150
	maxActionsElements = 25
	maxContextElements = 10
	maxButtonText      = 75
	maxButtonValue     = 2000
	maxURL             = 3000
	maxMarkdownBlock   = 12000
	maxMessageText     = 40000
	maxOptions         = 100
	maxOptionText      = 75
	maxOptionValue     = 150
	maxPlaceholder     = 150
	maxAltText         = 2000
)

type blockElementKind int

const (
	inActions blockElementKind = iota
	asAccessory
)

var (
	actionsElements = set("button", "static_select", "external_select", "users_select", "conversations_select",
		"channels_select", "multi_static_select", "multi_external_select", "multi_users_select",
		"multi_conversations_select", "multi_channels_select", "overflow", "datepicker", "timepicker",
		"datetimepicker", "checkboxes", "radio_buttons", "workflow_button", "rich_text_input")
	accessoryElements = set("button", "static_select", "external_select", "users_select", "conversations_select",
		"channels_select", "multi_static_select", "multi_external_select", "multi_users_select",
		"multi_conversations_select", "multi_channels_select", "overflow", "datepicker", "timepicker",
		"image", "checkboxes", "radio_buttons", "workflow_button")
	inputElements = set("plain_text_input", "number_input", "email_text_input", "url_text_input",
		"rich_text_input", "static_select", "external_select", "users_select", "conversations_select",
		"channels_select", "multi_static_select", "multi_external_select", "multi_users_select",
		"multi_conversations_select", "multi_channels_select", "datepicker", "timepicker",
		"datetimepicker", "checkboxes", "radio_buttons", "file_input")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// blockCheck collects the problems found in one message's blocks.
type blockCheck struct {
	problems []string
	blockIDs map[string]bool
	tooMany  bool
}

func (c *blockCheck) addf(ptr, format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...)+" [json-pointer:"+ptr+"]")
}

// checkBlocks validates a blocks parameter and returns the blocks as Slack
// stores them: block_id and action_id filled in where missing (Slack does
// this, and clicks carry them back). code is "" when the blocks are valid.
func checkBlocks(raw string) (normalized json.RawMessage, code string, problems []string) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var blocks []any
	if err := dec.Decode(&blocks); err != nil {
		return nil, "invalid_blocks_format", []string{"blocks must be a JSON array: " + err.Error()}
	}
	if len(blocks) == 0 {
		return nil, "", nil
	}
	c := &blockCheck{blockIDs: map[string]bool{}}
	if len(blocks) > maxBlocks {
		c.tooMany = true
		c.addf("/blocks", "too_many_blocks: no more than %d items allowed, got %d", maxBlocks, len(blocks))
		return nil, "invalid_blocks", c.problems
	}
	for i, b := range blocks {
		c.block(b, fmt.Sprintf("/blocks/%d", i))
	}
	if len(c.problems) > 0 {
		return nil, "invalid_blocks", c.problems
	}
	for _, b := range blocks {
		fillIDs(b.(map[string]any))
	}
	out, err := json.Marshal(blocks)
	if err != nil {
		return nil, "invalid_blocks_format", []string{err.Error()}
	}
	return out, "", nil
}

func (c *blockCheck) block(v any, ptr string) {
	b, ok := v.(map[string]any)
	if !ok {
		c.addf(ptr, "expected an object")
		return
	}
	if id, present := b["block_id"]; present {
		s, ok := id.(string)
		switch {
		case !ok:
			c.addf(ptr+"/block_id", "expected a string")
		case s == "":
			c.addf(ptr+"/block_id", "must be more than 0 characters")
		case utf8.RuneCountInString(s) > maxBlockID:
			c.addf(ptr+"/block_id", "must be less than %d characters", maxBlockID+1)
		case c.blockIDs[s]:
			c.addf(ptr+"/block_id", "duplicate block_id %q", s)
		default:
			c.blockIDs[s] = true
		}
	}
	typ, _ := b["type"].(string)
	switch typ {
	case "section":
		_, hasText := b["text"]
		fields, hasFields := b["fields"]
		if !hasText && !hasFields {
			c.addf(ptr, "missing required field: text")
		}
		if hasText {
			c.text(b["text"], ptr+"/text", false, maxSectionText)
		}
		if hasFields {
			arr, ok := fields.([]any)
			switch {
			case !ok:
				c.addf(ptr+"/fields", "expected an array")
			case len(arr) == 0:
				c.addf(ptr+"/fields", "must provide at least 1 item")
			case len(arr) > maxSectionFields:
				c.addf(ptr+"/fields", "no more than %d items allowed", maxSectionFields)
			default:
				for i, f := range arr {
					c.text(f, fmt.Sprintf("%s/fields/%d", ptr, i), false, maxFieldText)
				}
			}
		}
		if acc, ok := b["accessory"]; ok {
			c.element(acc, ptr+"/accessory", asAccessory)
		}
	case "header":
		if t, ok := b["text"]; ok {
			c.text(t, ptr+"/text", true, maxHeaderText)
		} else {
			c.addf(ptr, "missing required field: text")
		}
	case "divider":
	case "actions":
		arr := c.array(b, "elements", ptr, 1, maxActionsElements)
		for i, e := range arr {
			c.element(e, fmt.Sprintf("%s/elements/%d", ptr, i), inActions)
		}
	case "context":
		arr := c.array(b, "elements", ptr, 1, maxContextElements)
		for i, e := range arr {
			p := fmt.Sprintf("%s/elements/%d", ptr, i)
			if m, ok := e.(map[string]any); ok && m["type"] == "image" {
				c.image(m, p)
			} else {
				c.text(e, p, false, maxSectionText)
			}
		}
	case "image":
		c.image(b, ptr)
		if t, ok := b["title"]; ok {
			c.text(t, ptr+"/title", true, maxAltText)
		}
	case "markdown":
		c.str(b, "text", ptr, true, maxMarkdownBlock)
	case "rich_text":
		c.array(b, "elements", ptr, 1, 0)
	case "input":
		if l, ok := b["label"]; ok {
			c.text(l, ptr+"/label", true, maxAltText)
		} else {
			c.addf(ptr, "missing required field: label")
		}
		el, ok := b["element"].(map[string]any)
		if !ok {
			c.addf(ptr, "missing required field: element")
		} else if t, _ := el["type"].(string); !inputElements[t] {
			c.addf(ptr+"/element/type", "must be a valid enum value")
		} else {
			c.str(el, "action_id", ptr+"/element", false, maxActionID)
		}
	case "file":
		c.str(b, "external_id", ptr, true, 255)
		c.str(b, "source", ptr, true, 255)
	case "video":
		c.str(b, "alt_text", ptr, true, maxAltText)
		c.str(b, "thumbnail_url", ptr, true, maxURL)
		c.str(b, "video_url", ptr, true, maxURL)
		if t, ok := b["title"]; ok {
			c.text(t, ptr+"/title", true, 200)
		} else {
			c.addf(ptr, "missing required field: title")
		}
	case "table":
		c.array(b, "rows", ptr, 1, 100)
	case "":
		c.addf(ptr, "missing required field: type")
	default:
		c.addf(ptr+"/type", "unsupported block type %q", typ)
	}
}

func (c *blockCheck) element(v any, ptr string, kind blockElementKind) {
	e, ok := v.(map[string]any)
	if !ok {
		c.addf(ptr, "expected an object")
		return
	}
	typ, _ := e["type"].(string)
	allowed := actionsElements
	if kind == asAccessory {
		allowed = accessoryElements
	}
	if typ == "" {
		c.addf(ptr, "missing required field: type")
		return
	}
	if !allowed[typ] {
		c.addf(ptr+"/type", "unsupported element type %q", typ)
		return
	}
	if typ != "image" {
		c.str(e, "action_id", ptr, false, maxActionID)
	}
	switch typ {
	case "button":
		if t, ok := e["text"]; ok {
			c.text(t, ptr+"/text", true, maxButtonText)
		} else {
			c.addf(ptr, "missing required field: text")
		}
		c.str(e, "value", ptr, false, maxButtonValue)
		c.str(e, "url", ptr, false, maxURL)
		c.str(e, "accessibility_label", ptr, false, maxButtonText)
		if st, ok := e["style"]; ok && st != "primary" && st != "danger" {
			c.addf(ptr+"/style", "must be a valid enum value")
		}
		if cf, ok := e["confirm"]; ok {
			c.confirm(cf, ptr+"/confirm")
		}
	case "static_select", "multi_static_select":
		c.placeholder(e, ptr)
		_, hasOpts := e["options"]
		_, hasGroups := e["option_groups"]
		if !hasOpts && !hasGroups {
			c.addf(ptr, "missing required field: options")
		}
		if hasOpts {
			c.options(e, ptr, 1, maxOptions)
		}
	case "overflow":
		c.options(e, ptr, 1, 5)
	case "checkboxes", "radio_buttons":
		c.options(e, ptr, 1, 10)
	case "image":
		c.image(e, ptr)
	default:
		c.placeholder(e, ptr)
	}
}

func (c *blockCheck) placeholder(e map[string]any, ptr string) {
	if p, ok := e["placeholder"]; ok {
		c.text(p, ptr+"/placeholder", true, maxPlaceholder)
	}
}

func (c *blockCheck) options(e map[string]any, ptr string, minN, maxN int) {
	for i, o := range c.array(e, "options", ptr, minN, maxN) {
		p := fmt.Sprintf("%s/options/%d", ptr, i)
		m, ok := o.(map[string]any)
		if !ok {
			c.addf(p, "expected an object")
			continue
		}
		if t, ok := m["text"]; ok {
			c.text(t, p+"/text", false, maxOptionText)
		} else {
			c.addf(p, "missing required field: text")
		}
		c.str(m, "value", p, false, maxOptionValue)
	}
}

func (c *blockCheck) confirm(v any, ptr string) {
	m, ok := v.(map[string]any)
	if !ok {
		c.addf(ptr, "expected an object")
		return
	}
	for _, f := range []struct {
		name  string
		plain bool
		max   int
	}{{"title", true, 100}, {"text", false, 300}, {"confirm", true, 30}, {"deny", true, 30}} {
		if t, ok := m[f.name]; ok {
			c.text(t, ptr+"/"+f.name, f.plain, f.max)
		} else {
			c.addf(ptr, "missing required field: %s", f.name)
		}
	}
}

func (c *blockCheck) image(m map[string]any, ptr string) {
	if _, ok := m["slack_file"]; !ok {
		c.str(m, "image_url", ptr, true, maxURL)
	}
	c.str(m, "alt_text", ptr, true, maxAltText)
}

// text checks a text composition object.
func (c *blockCheck) text(v any, ptr string, plainOnly bool, maxLen int) {
	m, ok := v.(map[string]any)
	if !ok {
		c.addf(ptr, "expected an object")
		return
	}
	typ, _ := m["type"].(string)
	switch {
	case typ == "plain_text":
		if _, ok := m["verbatim"]; ok {
			c.addf(ptr, "invalid additional property: verbatim")
		}
	case typ == "mrkdwn" && !plainOnly:
		if _, ok := m["emoji"]; ok {
			c.addf(ptr, "invalid additional property: emoji")
		}
	default:
		c.addf(ptr+"/type", "must be a valid enum value")
	}
	s, ok := m["text"].(string)
	switch {
	case !ok:
		c.addf(ptr, "missing required field: text")
	case s == "":
		c.addf(ptr+"/text", "must be more than 0 characters")
	case utf8.RuneCountInString(s) > maxLen:
		c.addf(ptr+"/text", "must be less than %d characters", maxLen+1)
	}
}

func (c *blockCheck) str(m map[string]any, name, ptr string, required bool, maxLen int) {
	v, present := m[name]
	if !present {
		if required {
			c.addf(ptr, "missing required field: %s", name)
		}
		return
	}
	s, ok := v.(string)
	switch {
	case !ok:
		c.addf(ptr+"/"+name, "expected a string")
	case s == "":
		c.addf(ptr+"/"+name, "must be more than 0 characters")
	case utf8.RuneCountInString(s) > maxLen:
		c.addf(ptr+"/"+name, "must be less than %d characters", maxLen+1)
	}
}

// array returns m[name] as a list after checking its length (maxN 0: no limit).
func (c *blockCheck) array(m map[string]any, name, ptr string, minN, maxN int) []any {
	v, present := m[name]
	if !present {
		c.addf(ptr, "missing required field: %s", name)
		return nil
	}
	arr, ok := v.([]any)
	switch {
	case !ok:
		c.addf(ptr+"/"+name, "expected an array")
		return nil
	case len(arr) < minN:
		c.addf(ptr+"/"+name, "must provide at least %d items", minN)
	case maxN > 0 && len(arr) > maxN:
		c.addf(ptr+"/"+name, "no more than %d items allowed", maxN)
		return nil
	}
	return arr
}

// fillIDs gives blocks and interactive elements the ids Slack would assign.
func fillIDs(b map[string]any) {
	if _, ok := b["block_id"]; !ok {
		b["block_id"] = shortID()
	}
	fill := func(v any) {
		if e, ok := v.(map[string]any); ok && e["type"] != "image" {
			if _, ok := e["action_id"]; !ok {
				e["action_id"] = shortID()
			}
		}
	}
	switch b["type"] {
	case "actions":
		if arr, ok := b["elements"].([]any); ok {
			for _, e := range arr {
				fill(e)
			}
		}
	case "section":
		if acc, ok := b["accessory"]; ok {
			fill(acc)
		}
	case "input":
		fill(b["element"])
	}
}

// button is a clickable button found in a stored message.
type button struct {
	blockID, actionID, value, style string
	text                            json.RawMessage
}

// findButtons lists the buttons of stored blocks, in order.
func findButtons(blocks json.RawMessage) []button {
	if len(bytes.TrimSpace(blocks)) == 0 {
		return nil
	}
	var bs []struct {
		Type      string            `json:"type"`
		BlockID   string            `json:"block_id"`
		Elements  []json.RawMessage `json:"elements"`
		Accessory json.RawMessage   `json:"accessory"`
	}
	if json.Unmarshal(blocks, &bs) != nil {
		return nil
	}
	var out []button
	for _, b := range bs {
		els := b.Elements
		if b.Type == "section" && len(b.Accessory) > 0 {
			els = []json.RawMessage{b.Accessory}
		} else if b.Type != "actions" {
			continue
		}
		for _, raw := range els {
			var e struct {
				Type     string          `json:"type"`
				ActionID string          `json:"action_id"`
				Value    string          `json:"value"`
				Style    string          `json:"style"`
				Text     json.RawMessage `json:"text"`
			}
			if json.Unmarshal(raw, &e) == nil && e.Type == "button" {
				out = append(out, button{blockID: b.BlockID, actionID: e.ActionID, value: e.Value, style: e.Style, text: e.Text})
			}
		}
	}
	return out
}
