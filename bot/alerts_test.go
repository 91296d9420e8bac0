package bot

import (
	"encoding/json"
	"testing"

	"github.com/slack-go/slack"
)

func TestParseSentryAlertShapes(t *testing.T) {
	var atts []slack.Attachment
	if err := json.Unmarshal([]byte(`[{"title":"OSError","title_link":"https://sentry.io/organizations/openverse/issues/9003/?referrer=slack","text":"ingestion_server.api in refresh","footer":"ingestion-server","color":"#E03E2F","fallback":"[ingestion-server] OSError"}]`), &atts); err != nil {
		t.Fatal(err)
	}
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(`[{"type":"section","text":{"type":"mrkdwn","text":"*<https://openverse.sentry.io/issues/9002/?referrer=slack&alert_rule_id=7|IndexError in reindex>*"}},{"type":"context","elements":[{"type":"mrkdwn","text":"INGESTION-SERVER-4G | ingestion-server | State: New"}]}]`), &blocks); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		content []string
		id      string
		short   string
		title   string
	}{
		{"attachments", contentOf(atts), "9003", "", "OSError"},
		{"blocks", contentOf(blocks), "9002", "INGESTION-SERVER-4G", ""},
	} {
		a, ok := parseSentryAlert(Message{Content: c.content, BotID: "B1"}, "openverse", "ingestion-server")
		if !ok || a.IssueID != c.id || a.ShortID != c.short || c.title != "" && a.Title != c.title {
			t.Errorf("%s: %+v %v from %q", c.name, a, ok, c.content)
		}
		if _, ok := parseSentryAlert(Message{Content: c.content}, "openverse", "openverse-api"); ok {
			t.Errorf("%s: an alert about ingestion-server matched openverse-api", c.name)
		}
		if _, ok := parseSentryAlert(Message{Content: c.content}, "someone-else", "ingestion-server"); ok {
			t.Errorf("%s: an alert of another org matched", c.name)
		}
	}
}
