// Package airflow asks Airflow's REST API whether a data refresh is running,
// because the runbook forbids deploying the ingestion server while one is:
// the deploy would restart the server under the refresh.
//
// Both API generations are spoken, since the Openverse Airflow may be on
// either while it migrates: Airflow 2 serves /api/v1 with basic auth,
// Airflow 3 serves /api/v2 behind a short-lived JWT from /auth/token.
//
// The answer is a safety gate, so every doubt is an error rather than "no
// runs": an unknown DAG, a wrong API version, refused credentials or an
// unreachable server all fail the check instead of letting a deploy through.
// Airflow 2 answers 200 with no runs for a DAG it does not have, so an empty
// answer is confirmed by looking the DAG itself up.
//
// Errors never carry the password, the basic-auth header or the token, even
// when a server echoes them back: they end up in Slack and in logs.
package airflow
