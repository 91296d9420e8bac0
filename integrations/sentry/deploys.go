package sentry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Deploy is a deploy marker: it tells Sentry when a release reached an
// environment, so issues can be attributed to the deploy that caused them.
type Deploy struct {
	Version     string // the Sentry release version, e.g. the image tag
	Environment string // Sentry environment; required
	Name        string // optional, e.g. "deploybot run 42"
	URL         string // optional link, e.g. to the run's Slack thread
	Started     time.Time
	Finished    time.Time // zero: Sentry records the time it receives the deploy
}

// CreateDeploy records d on the release. If the release does not exist yet
// (nothing created it when the image was built), it is created for project
// (slug or numeric id) and the deploy recorded again. A 5xx is retried like
// any other call, which can record the deploy twice if Sentry had in fact
// stored it: a duplicate marker is harmless, a missing one is not.
func (c *Client) CreateDeploy(ctx context.Context, project string, d Deploy) error {
	if strings.TrimSpace(d.Version) == "" {
		return &Error{msg: "sentry deploy: the release version is empty"}
	}
	if strings.TrimSpace(d.Environment) == "" {
		return &Error{msg: "sentry deploy: the environment is empty"}
	}
	body := map[string]any{"environment": d.Environment}
	if d.Name != "" {
		body["name"] = d.Name
	}
	if d.URL != "" {
		body["url"] = d.URL
	}
	if !d.Started.IsZero() {
		body["dateStarted"] = formatTime(d.Started)
	}
	if !d.Finished.IsZero() {
		body["dateFinished"] = formatTime(d.Finished)
	}
	path := c.orgPath("releases/" + url.PathEscape(d.Version) + "/deploys/")

	r, err := c.do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return err
	}
	if r.status != http.StatusNotFound {
		return c.deployResult(r, d)
	}
	if err := c.createRelease(ctx, project, d.Version); err != nil {
		return err
	}
	r, err = c.do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return err
	}
	return c.deployResult(r, d)
}

func (c *Client) deployResult(r *response, d Deploy) error {
	if r.status == http.StatusCreated || r.status == http.StatusOK {
		return nil
	}
	if r.status == http.StatusNotFound {
		return &Error{Kind: ErrNotFound, Status: r.status, msg: fmt.Sprintf(
			"sentry release %s still not found after creating it (404)%s", d.Version, c.detailSuffix(r.body))}
	}
	return c.statusError(r, fmt.Sprintf("record a deploy of %s to %s", d.Version, d.Environment))
}

// createRelease creates the release; 208 (it appeared meanwhile, e.g.
// created by CI) counts as success.
func (c *Client) createRelease(ctx context.Context, project, version string) error {
	slug, err := c.projectSlug(ctx, project)
	if err != nil {
		return err
	}
	r, err := c.do(ctx, http.MethodPost, c.orgPath("releases/"), nil,
		map[string]any{"version": version, "projects": []string{slug}})
	if err != nil {
		return err
	}
	switch r.status {
	case http.StatusCreated, http.StatusOK, http.StatusAlreadyReported:
		return nil
	case http.StatusNotFound:
		return &Error{Kind: ErrNotFound, Status: r.status,
			msg: fmt.Sprintf("sentry organisation %q not found (404)%s", c.org, c.detailSuffix(r.body))}
	}
	return c.statusError(r, fmt.Sprintf("create release %s for project %s", version, slug))
}

// HasDeploy reports whether a deploy of version to environment is already
// recorded: how a marker whose sending a crash interrupted is checked
// before it is sent again. An unknown release has no deploys.
func (c *Client) HasDeploy(ctx context.Context, version, environment string) (bool, error) {
	r, err := c.do(ctx, http.MethodGet, c.orgPath("releases/"+url.PathEscape(version)+"/deploys/"), nil, nil)
	if err != nil {
		return false, err
	}
	if r.status == http.StatusNotFound {
		return false, nil
	}
	if r.status != http.StatusOK {
		return false, c.statusError(r, fmt.Sprintf("list the deploys of %s", version))
	}
	var ds []struct {
		Environment string `json:"environment"`
	}
	if err := c.decode(r, "deploys of "+version, &ds); err != nil {
		return false, err
	}
	for _, d := range ds {
		if d.Environment == environment {
			return true, nil
		}
	}
	return false, nil
}
