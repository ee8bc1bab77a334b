package activities_test

import (
	"strings"
	"testing"

	"remediator/activities"
	"remediator/internal/slack"
	"remediator/internal/slack/slacktest"
)

// A reminder updates the request with a bot and replies in its thread;
// through an incoming webhook (which cannot update) it is posted alone,
// not as a second copy of the request.
func TestSlackNotifierAnnounces(t *testing.T) {
	notice := activities.Notice{RemediationID: "rem-1", DecisionID: "dec-1", Digest: strings.Repeat("a", 64), Repo: "acme/api",
		Phase: "AwaitingApproval", Required: 1}

	f := slacktest.New(t, "xoxb-test", "C0TEST1")
	bot, err := slack.New(slack.Config{BotToken: "xoxb-test", Channel: "C0TEST1", APIURL: f.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	n := &activities.SlackNotifier{Client: bot}
	ref, err := n.Notify(t.Context(), notice, activities.MessageRef{})
	if err != nil {
		t.Fatal(err)
	}
	remind := notice
	remind.Reminders, remind.Announce = 1, "Reminder 1: rem-1 awaits approval"
	if _, err := n.Notify(t.Context(), remind, ref); err != nil {
		t.Fatal(err)
	}
	msgs := f.Messages()
	if len(msgs) != 2 || msgs[0].Updates != 1 || msgs[1].ThreadTS != ref.TS || !strings.HasPrefix(msgs[1].Text, "Reminder 1") {
		t.Fatalf("bot: %+v", msgs)
	}

	w := slacktest.New(t, "", "C0TEST1")
	hook, err := slack.New(slack.Config{WebhookURL: w.WebhookURL()})
	if err != nil {
		t.Fatal(err)
	}
	n = &activities.SlackNotifier{Client: hook}
	if _, err := n.Notify(t.Context(), notice, activities.MessageRef{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(t.Context(), remind, activities.MessageRef{}); err != nil {
		t.Fatal(err)
	}
	msgs = w.Messages()
	if len(msgs) != 2 || msgs[1].Text != "Reminder 1: rem-1 awaits approval" || len(msgs[1].Blocks) > 0 && string(msgs[1].Blocks) != "null" {
		t.Fatalf("webhook: %+v", msgs)
	}
}
