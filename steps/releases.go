package steps

import (
	"context"
	"fmt"
)

// VersionChoice is a version a person may pick when starting a deploy:
// the image tag of one of the service's newest releases.
type VersionChoice struct {
	Tag   string // the image tag, as /deploy takes it
	Draft bool   // from the drafted (not yet published) release
}

// VersionChoices lists the image tags of the service's newest drafted and
// newest published releases, newest first. It returns nothing, and no
// error, when GitHub is not configured: people then type the tag.
func (e *Engine) VersionChoices(ctx context.Context, service string) ([]VersionChoice, error) {
	g, ok := e.runbooks.prs.(*ghSteps)
	svc := e.runbooks.cfg.Service(service)
	if !ok || svc == nil {
		return nil, nil
	}
	var out []VersionChoice
	draft, err := g.gh.NewestDraft(ctx, g.cfg.Monorepo, svc.ReleaseTagPrefix)
	if err != nil {
		return nil, fmt.Errorf("reading the drafted %s release from %s: %w", svc.Name, g.cfg.Monorepo, err)
	}
	pub, err := g.gh.LatestPublished(ctx, g.cfg.Monorepo, svc.ReleaseTagPrefix)
	if err != nil {
		return nil, fmt.Errorf("reading the published %s releases from %s: %w", svc.Name, g.cfg.Monorepo, err)
	}
	for _, rel := range []*Release{draft, pub} {
		if rel == nil {
			continue
		}
		tag, err := g.gh.ImageTag(rel.Tag, svc.ReleaseTagPrefix, svc.ImageTagPrefix)
		if err != nil {
			continue // a release that names no image cannot be deployed
		}
		out = append(out, VersionChoice{Tag: tag, Draft: rel.Draft})
	}
	return out, nil
}
