package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A cases.json as `cdc-verify cases` writes it: stream fields in base64, the decoded event.
func writeCases(t *testing.T, cases ...map[string]any) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cases.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func caseOf(t *testing.T, eventID string, tsMs string, comment map[string]any) map[string]any {
	t.Helper()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return map[string]any{
		"event_id": eventID, "entity": "comment", "decoded": comment,
		"fields": map[string]string{
			"event_id": b64(eventID), "entity": b64("comment"), "op": b64("update"),
			"entity_id": b64("t1_abc"), "version": b64("3"), "ts_ms": b64(tsMs),
			"encoding": b64("msgpack"), "payload": b64("\x80"),
		},
	}
}

func TestCasesLoadAsScenarioChangesInTimeOrder(t *testing.T) {
	// The comment of the committed scenario's first comment line, as JSON.
	var comment map[string]any
	for _, line := range strings.Split(string(mustRead(t, filepath.Join(vectorsDir, "scenario.jsonl"))), "\n") {
		var change map[string]any
		if json.Unmarshal([]byte(line), &change) == nil && change["comment"] != nil {
			comment = change["comment"].(map[string]any)
			break
		}
	}
	if comment == nil {
		t.Fatal("no comment in the scenario")
	}
	path := writeCases(t,
		caseOf(t, "01HF7YAYZNVEC25TGP2MJWPY6T", "2000", comment),
		caseOf(t, "01HF7YAZB698F76THDQW1G0MHE", "1000", comment),
		caseOf(t, "01HF7YAZE2J6NW7QAA706BAH7Q", "1000", comment),
	)
	got, err := ReadCases(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].TsMs != 1000 || got[1].TsMs != 1001 || got[2].TsMs != 2000 {
		t.Fatalf("ts_ms not in increasing order: %+v", got)
	}
	if got[0].EventID != "01HF7YAZB698F76THDQW1G0MHE" || got[0].Version != 3 || got[0].Op != "update" {
		t.Fatalf("fields not read: %+v", got[0])
	}
	if got[0].Comment.Body != comment["body"] {
		t.Fatalf("decoded comment not read: %q", got[0].Comment.Body)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-cases", path, "-scenario", path}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "one of them") {
		t.Fatalf("-cases with -scenario: exit %d, %s", code, errOut.String())
	}
}
