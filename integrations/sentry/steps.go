package sentry

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// Steps adapts the client, for one project, to what the deploy steps ask
// of Sentry.
type Steps struct {
	*Client
	Project string
}

var _ steps.Sentry = Steps{}

// HasDeploy implements steps.Sentry.
func (s Steps) HasDeploy(ctx context.Context, version, environment string) (bool, error) {
	return s.Client.HasDeploy(ctx, version, environment)
}

// CreateDeploy implements steps.Sentry.
func (s Steps) CreateDeploy(ctx context.Context, version, environment string, started, finished time.Time) error {
	return s.Client.CreateDeploy(ctx, s.Project, Deploy{Version: version, Environment: environment, Name: "deploybot", Started: started, Finished: finished})
}

// NewIssues implements steps.Sentry.
func (s Steps) NewIssues(ctx context.Context, environment string, since time.Time) ([]steps.SentryIssue, error) {
	is, err := s.Client.NewIssues(ctx, s.Project, environment, since)
	if err != nil {
		return nil, err
	}
	out := make([]steps.SentryIssue, len(is))
	for i, x := range is {
		out[i] = steps.SentryIssue{ID: x.ID, ShortID: x.ShortID, Title: x.Title, Culprit: x.Culprit, Permalink: x.Permalink,
			Level: x.Level, Count: x.Count, UserCount: x.UserCount, FirstSeen: x.FirstSeen, Regressed: x.Regressed}
	}
	return out, nil
}
