package airflow

import (
	"context"

	"github.com/deploybot/deploybot/steps"
)

// Steps adapts the client to what the deploy steps ask of Airflow.
type Steps struct{ *Client }

var _ steps.Airflow = Steps{}

// ActiveRuns implements steps.Airflow.
func (s Steps) ActiveRuns(ctx context.Context, dags []string) ([]steps.DagRun, error) {
	runs, err := s.Client.ActiveRuns(ctx, dags)
	if err != nil {
		return nil, err
	}
	out := make([]steps.DagRun, len(runs))
	for i, r := range runs {
		out[i] = steps.DagRun{DagID: r.DagID, RunID: r.RunID, State: r.State, StartDate: r.StartDate, URL: r.URL}
	}
	return out, nil
}
