package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"

	"github.com/cdc-verify/cdc-verify/tests/gowriter/commentpb"
)

const vectorsDir = "../vectors"

func loadScenario(t *testing.T) []Change {
	t.Helper()
	changes, err := ReadScenario(filepath.Join(vectorsDir, "scenario.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) < VectorChanges {
		t.Fatalf("scenario has %d changes", len(changes))
	}
	return changes
}

// The committed vectors are what this code writes today, byte for byte.
func TestCommittedVectorsAreCurrent(t *testing.T) {
	manifest, files, err := BuildVectors(loadScenario(t))
	if err != nil {
		t.Fatal(err)
	}
	body, err := ManifestJSON(manifest)
	if err != nil {
		t.Fatal(err)
	}
	hint := "regenerate: tests/gowriter/build.sh && tests/gowriter/bin/gowriter " +
		"-scenario tests/vectors/scenario.jsonl -vectors tests/vectors"
	committed, err := os.ReadFile(filepath.Join(vectorsDir, "manifest.json"))
	if err != nil || !bytes.Equal(committed, body) {
		t.Fatalf("tests/vectors/manifest.json is stale (%v); %s", err, hint)
	}
	for name, payload := range files {
		got, err := os.ReadFile(filepath.Join(vectorsDir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("tests/vectors/%s is stale (%v); %s", name, err, hint)
		}
	}
	if len(manifest) != len(Variants)*VectorChanges {
		t.Errorf("manifest has %d entries, want %d", len(manifest), len(Variants)*VectorChanges)
	}
}

func TestVectorsAreDeterministic(t *testing.T) {
	changes := loadScenario(t)
	m1, f1, _ := BuildVectors(changes)
	m2, f2, _ := BuildVectors(changes)
	b1, _ := ManifestJSON(m1)
	b2, _ := ManifestJSON(m2)
	if !bytes.Equal(b1, b2) || !strings.HasSuffix(string(b1), "}\n]\n") {
		t.Fatal("manifest differs between runs or lacks the trailing newline")
	}
	for name := range f1 {
		if !bytes.Equal(f1[name], f2[name]) {
			t.Errorf("%s differs between runs", name)
		}
	}
}

// The default payload decodes (with Go's own msgpack decoder) to the map of docs/wire-format.md with
// the right msgpack types: floats stay float64 even when integral, awards an array.
func TestDefaultPayloadTypes(t *testing.T) {
	for _, change := range loadScenario(t) {
		c := change.Comment
		payload, err := EncodeMsgpack(&c, Switches{})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := msgpack.Unmarshal(payload, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != len(commentKeys) {
			t.Fatalf("%d keys, want %d", len(m), len(commentKeys))
		}
		for _, k := range commentKeys {
			if _, ok := m[k]; !ok {
				t.Fatalf("missing key %q", k)
			}
		}
		if _, ok := m["created_utc"].(float64); !ok {
			t.Errorf("created_utc is %T", m["created_utc"])
		}
		if c.Edited == nil && m["edited"] != false {
			t.Errorf("edited is %#v, want false", m["edited"])
		}
		if c.Edited != nil {
			if _, ok := m["edited"].(float64); !ok {
				t.Errorf("edited is %T", m["edited"])
			}
		}
		if _, ok := m["awards"].([]any); !ok {
			t.Errorf("awards is %T", m["awards"])
		}
		if (c.RichText == nil) != (m["rich_text"] == nil) || (c.Media == nil) != (m["media"] == nil) {
			t.Errorf("nil vs list lost: rich_text %#v, media %#v", m["rich_text"], m["media"])
		}
		if (c.Distinguished == nil) != (m["distinguished"] == nil) {
			t.Errorf("distinguished %#v", m["distinguished"])
		}
	}
}

func TestProtobufKeepsNilVersusEmpty(t *testing.T) {
	c := loadScenario(t)[3].Comment // rich_text, media and awards: empty lists
	if c.RichText == nil || len(c.RichText) != 0 || c.Media == nil || len(c.Media) != 0 {
		t.Fatal("scenario change #3 should carry empty rich_text and media lists")
	}
	payload, err := EncodeProtobuf(&c)
	if err != nil {
		t.Fatal(err)
	}
	var msg commentpb.Comment
	if err := proto.Unmarshal(payload, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.RichText == nil || msg.Media == nil {
		t.Error("empty lists must set the wrapper")
	}
	if msg.Edited != nil || msg.Distinguished != nil {
		t.Error("edited false / distinguished nil must stay unset")
	}
	c.RichText, c.Media = nil, nil
	payload, _ = EncodeProtobuf(&c)
	msg.Reset()
	_ = proto.Unmarshal(payload, &msg)
	if msg.RichText != nil || msg.Media != nil {
		t.Error("nil lists must leave the wrapper unset")
	}
}

func TestExpectedVerdicts(t *testing.T) {
	changes := loadScenario(t)
	c0, c1, c2 := &changes[0].Comment, &changes[1].Comment, &changes[2].Comment
	byName := map[string]Variant{}
	for _, v := range Variants {
		byName[v.Name] = v
	}
	cases := []struct {
		variant string
		c       *ScenarioComment
		want    string
	}{
		{"float32", c0, "mismatch [/created_utc type]"},
		{"float32", c1, "mismatch [/created_utc value /edited value]"},
		{"edited-zero", c0, "mismatch [/edited type]"},
		{"edited-zero", c1, "match []"},
		{"omitempty", c0, "undecodable sister"},
		{"omitempty", c2, "match []"},
		{"int-created", c0, "mismatch [/created_utc type]"},
		{"untagged", c2, "undecodable sister"},
	}
	for _, tc := range cases {
		e := ExpectedVerdict(byName[tc.variant], tc.c)
		got := e.Verdict
		if e.Side != "" {
			got += " " + e.Side
		} else {
			var parts []string
			for _, d := range e.Differences {
				parts = append(parts, d.Path+" "+d.Kind)
			}
			got += " [" + strings.Join(parts, " ") + "]"
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.variant, got, tc.want)
		}
	}
}

func TestScenarioRejectsWrongTypes(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(vectorsDir, "scenario.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.SplitN(string(good), "\n", 2)[0]
	for name, bad := range map[string]string{
		"float score":    strings.Replace(line, `"gilded": 0`, `"gilded": 0.0`, 1),
		"edited true":    strings.Replace(line, `"edited": false`, `"edited": true`, 1),
		"missing key":    strings.Replace(line, `"stickied": false, `, ``, 1),
		"unknown key":    strings.Replace(line, `"stickied": false`, `"stickied": false, "x": 1`, 1),
		"null awards":    strings.Replace(line, `"awards": [`, `"awards": null, "y": [`, 1),
		"short event_id": strings.Replace(line, `"event_id": "01`, `"event_id": "`, 1),
	} {
		if bad == line {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := parseScenario(strings.NewReader(bad+"\n"), "x"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseScenario(strings.NewReader(line+"\n"+line+"\n"), "x"); err == nil {
		t.Error("repeated ts_ms accepted")
	}
}

func TestFlagValidation(t *testing.T) {
	var out, errOut bytes.Buffer
	scenario := filepath.Join(vectorsDir, "scenario.jsonl")
	for _, args := range [][]string{
		{},
		{"-scenario", scenario, "-encoding", "json"},
		{"-scenario", scenario, "-encoding", "protobuf", "-float32"},
		{"-scenario", scenario, "-ids", "sometimes"},
		{"-scenario", scenario, "-time-created", "-int-created"},
		{"-scenario", scenario, "-vectors", t.TempDir(), "-float32"},
	} {
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
