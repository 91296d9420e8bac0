package airflowtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, s *Server, path, auth string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// Airflow 2 does not look the DAG up when listing its runs; Airflow 3 does.
// Clients depend on the difference, so the fake must keep it.
func TestUnknownDAGPerVersion(t *testing.T) {
	s2 := NewServer(2, "u", "p")
	defer s2.Close()
	req, _ := http.NewRequest(http.MethodGet, s2.URL()+"/api/v1/dags/nope/dagRuns", nil)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		DagRuns      []any `json:"dag_runs"`
		TotalEntries int   `json:"total_entries"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body.DagRuns) != 0 || body.TotalEntries != 0 {
		t.Fatalf("Airflow 2 unknown DAG runs: %d %+v", resp.StatusCode, body)
	}

	s3 := NewServer(3, "u", "p")
	defer s3.Close()
	tokResp, err := http.Post(s3.URL()+"/auth/token", "application/json", strings.NewReader(`{"username":"u","password":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(tokResp.Body).Decode(&tok)
	tokResp.Body.Close()
	if tokResp.StatusCode != http.StatusCreated || tok.AccessToken == "" {
		t.Fatalf("token: %d %+v", tokResp.StatusCode, tok)
	}
	status, b := get(t, s3, "/api/v2/dags/nope/dagRuns", "Bearer "+tok.AccessToken)
	if status != 404 || !strings.Contains(b["detail"].(string), "nope") {
		t.Fatalf("Airflow 3 unknown DAG runs: %d %v", status, b)
	}
	if status, _ := get(t, s3, "/api/v1/dags/nope/dagRuns", "Bearer "+tok.AccessToken); status != 404 {
		t.Fatalf("Airflow 3 serves /api/v1: %d", status)
	}
	s3.ExpireTokens()
	if status, _ := get(t, s3, "/api/v2/dags/nope", "Bearer "+tok.AccessToken); status != 401 {
		t.Fatalf("expired token: %d", status)
	}
}

func TestStateFilterAndPaging(t *testing.T) {
	s := NewServer(2, "u", "p")
	defer s.Close()
	now := time.Now()
	s.SetRuns("d",
		DagRun{RunID: "a", State: "running", StartDate: now},
		DagRun{RunID: "b", State: "success", StartDate: now},
		DagRun{RunID: "c", State: "queued"})
	auth := "Basic dTpw" // u:p
	status, body := get(t, s, "/api/v1/dags/d/dagRuns?state=running&state=queued&limit=1&offset=1", auth)
	runs := body["dag_runs"].([]any)
	if status != 200 || body["total_entries"].(float64) != 2 || len(runs) != 1 || runs[0].(map[string]any)["dag_run_id"] != "c" {
		t.Fatalf("%d %v", status, body)
	}
	if runs[0].(map[string]any)["start_date"] != nil {
		t.Fatalf("queued run has a start date: %v", runs[0])
	}
}
