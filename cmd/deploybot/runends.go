package main

import (
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/integrations/infra"
	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

// notifier is what the engine tells of changes: the bot, and, with infra
// configured, the tidying up after a run ends (infra.merge_on_success,
// infra.keep_runs).
func (m *Main) notifier() steps.Notifier {
	if m.infra == nil {
		return m.Bot
	}
	open := func() []string {
		var ids []string
		for _, r := range m.Engine.OpenRuns() {
			ids = append(ids, r.ID)
		}
		return ids
	}
	return m.infra.Notifier(m.Bot, open, func(r *steps.Run, res infra.EndResult, err error) {
		log := m.Log.With(zap.String("run_id", r.ID), zap.String("service", r.Service))
		if res.Merged != "" {
			log.Info("merged the run branch into the base branch (infra.merge_on_success)", zap.String("commit", res.Merged))
		}
		if len(res.Removed) > 0 {
			log.Info("removed the folders of older finished runs (infra.keep_runs)", zap.Strings("runs", res.Removed))
		}
		if err != nil {
			log.Error("tidying up after the run failed", zap.Error(redact.Scrub(err)))
		}
	})
}
