package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"

	"github.com/cdc-verify/cdc-verify/tests/gowriter/commentpb"
)

const vectorsDir = "../vectors"

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

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

// The sticky rule agrees with Python's zlib.crc32(key) % 100000 < pct * 1000 at every
// boundary: the residues and expectations below were computed in Python
// (cdc_verify.core.scope.in_sample). The float comparison counts: 2.01*1000 is
// 2009.9999999999998 and 4.03*1000 is 4030.0000000000005 in both languages.
func TestInShareIsPythonsSampleRule(t *testing.T) {
	for _, tc := range []struct {
		key  string
		pct  float64
		want bool
	}{
		{"t2_kio", 0, false},     // residue 0
		{"t2_kio", 0.001, true},  // residue 0, PCT*1000 = 1.0
		{"t2_31f7", 0.125, true}, // residue 124
		{"t2_grq", 0.125, false}, // residue 125
		{"t2_5kx7", 2.01, true},  // residue 2009
		{"t2_18nt", 2.01, false}, // residue 2010
		{"t2_3eo4", 2.5, true},   // residue 2499
		{"t2_3t3f", 2.5, false},  // residue 2500
		{"t2_r6l", 4.03, true},   // residue 4030
		{"t2_1bfa", 4.03, false}, // residue 4031
		{"t2_609", 99.999, false},
		{"t2_609", 100, true}, // residue 99999
		{"t1_abc", 35.462, false},
		{"t1_abc", 35.463, true}, // residue 35462
		{"01HF7YAT00EC8W5KKF8HZD9NBV", 51.458, true},
		{"", 0.001, true},      // crc32 of nothing is 0
		{"日本語", 14.405, false}, // the UTF-8 bytes are hashed: residue 14405
		{"日本語", 14.406, true},
	} {
		if got := InShare(tc.key, tc.pct); got != tc.want {
			t.Errorf("InShare(%q, %v) = %v, want %v", tc.key, tc.pct, got, tc.want)
		}
	}
}

func changesFor(keys ...string) []Change {
	out := make([]Change, 0, len(keys))
	for i, k := range keys {
		out = append(out, Change{EventID: fmt.Sprintf("E%025d", i), EntityID: k, Entity: EntityAccount})
	}
	return out
}

func TestShareKeepsTheStickySetInOrder(t *testing.T) {
	changes := changesFor("t2_3eo4", "t2_3t3f", "t2_kio", "t2_3eo4", "t2_609")
	kept, skipped := Share(changes, 2.5, ShareKeyEntityID)
	var ids []string
	for _, c := range kept {
		ids = append(ids, c.EntityID)
	}
	if got := strings.Join(ids, " "); got != "t2_3eo4 t2_kio t2_3eo4" || skipped != 2 {
		t.Fatalf("kept %q, skipped %d", got, skipped)
	}
	// Every change of one entity goes the same way: sticky.
	if all, n := Share(changes, 100, ShareKeyEntityID); len(all) != 5 || n != 0 {
		t.Fatalf("-share 100 keeps %d, skips %d", len(all), n)
	}
	if none, n := Share(changes, 0, ShareKeyEntityID); len(none) != 0 || n != 5 {
		t.Fatalf("-share 0 keeps %d, skips %d", len(none), n)
	}
	// By event_id, the entity does not count.
	many := changesFor(strings.Fields(strings.Repeat("t2_3eo4 ", 40))...)
	byEvent, _ := Share(many, 50, ShareKeyEventID)
	for _, c := range byEvent {
		if !InShare(c.EventID, 50) {
			t.Errorf("%s kept by event_id outside the share", c.EventID)
		}
	}
	if len(byEvent) == 0 || len(byEvent) == len(many) {
		t.Errorf("by event_id at 50%%, %d of %d kept", len(byEvent), len(many))
	}
}

// One account change, and the payload the Python legacy writer (encode_msgpack) makes
// of it: the Go writer's is byte for byte the same.
const accountLine = `{"event_id": "01HF7YAT00EC8W5KKF8HZD9NBV", "entity": "account", "entity_id": "t2_5xq2m1", "op": "increment", "version": 7, "ts_ms": 1700000000000, "account": {"id": "5xq2m1", "name": "ネコ_Zürich42", "icon_url": null, "created_utc": 1400000000.5, "link_karma": 250000, "comment_karma": -130, "is_suspended": true, "suspended_until": 1800000000.25, "email_verified": false, "has_premium": true, "trophies": [{"trophy_id": "verified_email", "granted_utc": 1400000100.0}, {"trophy_id": "five_year_club", "granted_utc": 1557680000.75}]}}`

const accountPythonPayload = "8ba26964a6357871326d31a46e616d65b0e3838de382b35f5ac3bc726963683432a869636f6e5f75726cc0ab637265617465645f757463cb41d4dc9380200000aa6c696e6b5f6b61726d61ce0003d090ad636f6d6d656e745f6b61726d61d1ff7eac69735f73757370656e646564c3af73757370656e6465645f756e74696ccb41dad27480100000ae656d61696c5f7665726966696564c2ab6861735f7072656d69756dc3a874726f70686965739282a974726f7068795f6964ae76657269666965645f656d61696cab6772616e7465645f757463cb41d4dc939900000082a974726f7068795f6964ae666976655f796561725f636c7562ab6772616e7465645f757463cb41d73613e0300000"

func TestAnAccountIsWrittenAsThePythonLegacyWriterWritesIt(t *testing.T) {
	changes, err := parseScenario(strings.NewReader(accountLine+"\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	c := &changes[0]
	if c.Entity != EntityAccount || c.Op != "increment" || c.Account.IconURL != nil ||
		c.Account.SuspendedUntil == nil || len(c.Account.Trophies) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	want, _ := hex.DecodeString(accountPythonPayload)
	// Switches and protobuf are for comments: an account is always correct msgpack.
	for _, enc := range []Encoding{EncodingMsgpack, EncodingProtobuf} {
		payload, written, err := EncodeChange(c, enc, Switches{NilAwards: enc == EncodingMsgpack})
		if err != nil || written != EncodingMsgpack || !bytes.Equal(payload, want) {
			t.Fatalf("-encoding %s: %v, written as %s, payload %x", enc, err, written, payload)
		}
	}
	fields := EntryFields(c, EncodingMsgpack, want)
	if fields[2] != "entity" || fields[3] != "account" {
		t.Errorf("entry fields %v", fields[:4])
	}
	var m map[string]any
	if err := msgpack.Unmarshal(want, &m); err != nil || len(m) != len(accountKeys) {
		t.Fatalf("%v, %d keys", err, len(m))
	}
}

func TestAccountTrophiesAreNeverNil(t *testing.T) {
	line := strings.Replace(accountLine, `"trophies": [{`, `"trophies": [], "x": [{`, 1)
	line = strings.Replace(line, `, "x": [{"trophy_id": "verified_email", "granted_utc": 1400000100.0}, {"trophy_id": "five_year_club", "granted_utc": 1557680000.75}]`, ``, 1)
	changes, err := parseScenario(strings.NewReader(line+"\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	payload, _, err := EncodeChange(&changes[0], EncodingMsgpack, Switches{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = msgpack.Unmarshal(payload, &m)
	if trophies, ok := m["trophies"].([]any); !ok || len(trophies) != 0 {
		t.Errorf("trophies %#v, want an empty array", m["trophies"])
	}
}

func TestScenarioEntities(t *testing.T) {
	comment := strings.SplitN(string(mustRead(t, vectorsDir+"/scenario.jsonl")), "\n", 2)[0]
	withEntity := strings.Replace(comment, `{"event_id"`, `{"entity": "comment", "event_id"`, 1)
	for name, line := range map[string]string{"no entity": comment, "entity comment": withEntity} {
		changes, err := parseScenario(strings.NewReader(line+"\n"), "x")
		if err != nil || changes[0].Entity != EntityComment {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, bad := range map[string]string{
		"unknown entity":      strings.Replace(accountLine, `"entity": "account"`, `"entity": "link"`, 1),
		"model under another": strings.Replace(accountLine, `"account": {`, `"comment": {`, 1),
		"account key missing": strings.Replace(accountLine, `"has_premium": true, `, ``, 1),
		"account unknown key": strings.Replace(accountLine, `"has_premium": true`, `"has_premium": true, "x": 1`, 1),
		"float karma":         strings.Replace(accountLine, `"link_karma": 250000`, `"link_karma": 2.5`, 1),
		"null trophies":       strings.Replace(accountLine, `"trophies": [`, `"trophies": null, "y": [`, 1),
		"trophy key missing":  strings.Replace(accountLine, `"trophy_id": "verified_email", `, ``, 1),
		"string until":        strings.Replace(accountLine, `"suspended_until": 1800000000.25`, `"suspended_until": "soon"`, 1),
	} {
		if bad == accountLine {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := parseScenario(strings.NewReader(bad+"\n"), "x"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestShareFlagValidation(t *testing.T) {
	var out, errOut bytes.Buffer
	scenario := vectorsDir + "/scenario.jsonl"
	for _, args := range [][]string{
		{"-scenario", scenario, "-share", "101"},
		{"-scenario", scenario, "-share", "-1"},
		{"-scenario", scenario, "-share", "NaN"},
		{"-scenario", scenario, "-share-key", "author_id"},
		{"-scenario", scenario, "-vectors", t.TempDir(), "-share", "5"},
	} {
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
