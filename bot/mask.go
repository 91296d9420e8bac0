package bot

import (
	"context"

	"github.com/deploybot/deploybot/internal/redact"
)

// What runs store (notes, thread lines, files) is masked by the engine
// before it is stored (steps.SetMask). The masks below cover what the bot
// sends without storing it: replies, the Home tab, progress messages (Live)
// and run messages rendered afresh. Files come only from the outbox, so
// Upload is not masked again.

func maskView(m redact.Values, v View) View {
	v.Text = m.String(v.Text)
	if len(v.Blocks) > 0 {
		bs := make([]Block, len(v.Blocks))
		copy(bs, v.Blocks)
		for i := range bs {
			bs[i].Text = m.String(bs[i].Text)
		}
		v.Blocks = bs
	}
	return v
}

// maskedChat is a Chat that masks what it sends.
type maskedChat struct {
	Chat
	m redact.Values
}

func (c maskedChat) Post(ctx context.Context, channel, threadTS string, v View) (string, error) {
	return c.Chat.Post(ctx, channel, threadTS, maskView(c.m, v))
}

func (c maskedChat) Update(ctx context.Context, channel, ts string, v View) error {
	return c.Chat.Update(ctx, channel, ts, maskView(c.m, v))
}

// maskedViews is Views that masks the Home tab. Forms are built from the
// bot's own words; the outside text they can show (an error in the Deploy
// form's note, a result) is masked where it is put in (modals.go).
type maskedViews struct {
	Views
	m redact.Values
}

func (v maskedViews) PublishHome(ctx context.Context, user string, view View) error {
	return v.Views.PublishHome(ctx, user, maskView(v.m, view))
}
