package github

import (
	"fmt"
	"strings"
	"time"
)

// tagTimeLayout is the release-drafter timestamp, `date -u +%Y.%m.%d.%H.%M.%S`.
const tagTimeLayout = "2006.01.02.15.04.05"

// ImageTag maps a release tag to the Docker image tag the build workflow
// pushes for it: ingestion_server-2024.09.09.05.40.20 with prefixes
// "ingestion_server-" and "rel-" gives rel-2024.09.09.05.40.20. The
// timestamp must be a real UTC date and time, because a typo here would
// deploy (or roll back to) an image that does not exist.
func ImageTag(releaseTag, releasePrefix, imagePrefix string) (string, error) {
	stamp, ok := strings.CutPrefix(releaseTag, releasePrefix)
	if !ok {
		return "", fmt.Errorf("release tag %q does not start with %q", releaseTag, releasePrefix)
	}
	t, err := time.Parse(tagTimeLayout, stamp)
	if err != nil || t.Format(tagTimeLayout) != stamp {
		return "", fmt.Errorf("release tag %q does not end in a date and time YYYY.MM.DD.HH.MM.SS", releaseTag)
	}
	return imagePrefix + stamp, nil
}
