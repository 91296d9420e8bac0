package steps

import "strings"

// Escape makes outside text (release notes, PR titles, Terraform output,
// Sentry titles) safe for Slack mrkdwn: with &, < and > escaped it can never
// form a mention such as <!channel> or <@U…>, nor a link.
func Escape(s string) string {
	return escaper.Replace(s)
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
