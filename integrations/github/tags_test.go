package github

import "testing"

func TestImageTag(t *testing.T) {
	for _, tc := range []struct {
		tag, want string
		ok        bool
	}{
		{"ingestion_server-2024.09.09.05.40.20", "rel-2024.09.09.05.40.20", true},
		{"ingestion_server-2023.07.03.17.52.00", "rel-2023.07.03.17.52.00", true},
		{"ingestion_server-2024.02.29.23.59.59", "rel-2024.02.29.23.59.59", true}, // leap day
		{"ingestion-server-2024.09.09.05.40.20", "", false},                       // Terraform's spelling, not the tag's
		{"api-2024.09.09.05.40.20", "", false},
		{"ingestion_server-2023.02.29.00.00.00", "", false}, // not a leap year
		{"ingestion_server-2024.13.01.00.00.00", "", false},
		{"ingestion_server-2024.09.31.00.00.00", "", false},
		{"ingestion_server-2024.09.09.24.00.00", "", false},
		{"ingestion_server-2024.09.09.05.60.00", "", false},
		{"ingestion_server-2024.09.09.05.40.60", "", false},
		{"ingestion_server-2024.9.9.5.40.20", "", false},
		{"ingestion_server-2024.09.09.05.40.20x", "", false},
		{"ingestion_server-2024-09-09T05:40:20Z", "", false},
		{"ingestion_server-", "", false},
		{"", "", false},
	} {
		got, err := ImageTag(tc.tag, "ingestion_server-", "rel-")
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ImageTag(%q) = %q, %v; want %q, ok=%v", tc.tag, got, err, tc.want, tc.ok)
		}
	}
}
