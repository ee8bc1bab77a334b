package slacktest

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// The Block Kit limits Slack enforces on what the service sends; the fake
// refuses blocks beyond them (invalid_blocks) so tests catch what Slack
// would refuse.
const (
	maxSectionText  = 3000
	maxFieldText    = 2000
	maxFields       = 10
	maxHeaderText   = 150
	maxContextElems = 10
	maxActionElems  = 25
	maxButtonText   = 75
	maxButtonValue  = 2000
	maxActionID     = 255
	maxBlockID      = 255
	maxViewTitle    = 24
	maxPrivateMeta  = 3000
	maxViewBlocks   = 100
)

// checkBlocks validates a blocks array the way Slack does for the block
// types the service uses.
func checkBlocks(blocks []map[string]any, limit int) error {
	if len(blocks) > limit {
		return fmt.Errorf("%d blocks, at most %d", len(blocks), limit)
	}
	for i, b := range blocks {
		if err := checkBlock(b); err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
	}
	return nil
}

func checkBlock(b map[string]any) error {
	if id, ok := b["block_id"].(string); ok && (id == "" || utf8.RuneCountInString(id) > maxBlockID) {
		return errors.New("bad block_id")
	}
	switch b["type"] {
	case "header":
		return checkText(b["text"], maxHeaderText, true)
	case "section":
		text, hasText := b["text"]
		fields, hasFields := b["fields"].([]any)
		if !hasText && !hasFields {
			return errors.New("section without text or fields")
		}
		if hasText {
			if err := checkText(text, maxSectionText, false); err != nil {
				return err
			}
		}
		if len(fields) > maxFields {
			return errors.New("too many fields")
		}
		for _, f := range fields {
			if err := checkText(f, maxFieldText, false); err != nil {
				return err
			}
		}
	case "context":
		elems, _ := b["elements"].([]any)
		if len(elems) == 0 || len(elems) > maxContextElems {
			return errors.New("context needs 1 to 10 elements")
		}
		for _, e := range elems {
			if err := checkText(e, maxSectionText, false); err != nil {
				return err
			}
		}
	case "actions":
		elems, _ := b["elements"].([]any)
		if len(elems) == 0 || len(elems) > maxActionElems {
			return errors.New("actions needs 1 to 25 elements")
		}
		for _, e := range elems {
			if err := checkButton(e); err != nil {
				return err
			}
		}
	case "divider":
	case "input":
		if err := checkText(b["label"], 2000, true); err != nil {
			return err
		}
		el, _ := b["element"].(map[string]any)
		if el == nil || el["type"] == nil {
			return errors.New("input without element")
		}
	default:
		return fmt.Errorf("unsupported block type %v", b["type"])
	}
	return nil
}

// checkText validates a text object.
func checkText(v any, limit int, plainOnly bool) error {
	t, ok := v.(map[string]any)
	if !ok {
		return errors.New("text is not an object")
	}
	typ, _ := t["type"].(string)
	if typ != "plain_text" && (plainOnly || typ != "mrkdwn") {
		return fmt.Errorf("text type %q", typ)
	}
	s, ok := t["text"].(string)
	if !ok || s == "" || utf8.RuneCountInString(s) > limit {
		return fmt.Errorf("text empty or longer than %d", limit)
	}
	return nil
}

func checkButton(v any) error {
	b, ok := v.(map[string]any)
	if !ok || b["type"] != "button" {
		return errors.New("only buttons are supported in actions")
	}
	if err := checkText(b["text"], maxButtonText, true); err != nil {
		return err
	}
	if id, _ := b["action_id"].(string); id == "" || len(id) > maxActionID {
		return errors.New("bad action_id")
	}
	if val, ok := b["value"].(string); ok && utf8.RuneCountInString(val) > maxButtonValue {
		return errors.New("button value too long")
	}
	if st, ok := b["style"]; ok && st != "primary" && st != "danger" {
		return errors.New("bad button style")
	}
	return nil
}

// checkView validates a modal.
func checkView(v map[string]any) error {
	if v["type"] != "modal" {
		return errors.New("only modals are supported")
	}
	for _, k := range []string{"title", "submit", "close"} {
		if t, ok := v[k]; ok || k == "title" {
			if err := checkText(t, maxViewTitle, true); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	if pm, ok := v["private_metadata"].(string); ok && utf8.RuneCountInString(pm) > maxPrivateMeta {
		return errors.New("private_metadata too long")
	}
	raw, _ := v["blocks"].([]any)
	blocks := make([]map[string]any, 0, len(raw))
	for _, b := range raw {
		m, ok := b.(map[string]any)
		if !ok {
			return errors.New("block is not an object")
		}
		blocks = append(blocks, m)
	}
	return checkBlocks(blocks, maxViewBlocks)
}
