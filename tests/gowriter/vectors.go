package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// VectorChanges is how many changes of the scenario the test vectors cover.
const VectorChanges = 3

// Variant is one way of encoding the payload: the default, one divergence switch,
// or protobuf.
type Variant struct {
	Name     string
	Encoding Encoding
	Switches Switches
}

// Variants are the test-vector variants: the default, each single switch, protobuf.
var Variants = []Variant{
	{"default", EncodingMsgpack, Switches{}},
	{"nil-awards", EncodingMsgpack, Switches{NilAwards: true}},
	{"time-created", EncodingMsgpack, Switches{TimeCreated: true}},
	{"float32", EncodingMsgpack, Switches{Float32: true}},
	{"omitempty", EncodingMsgpack, Switches{OmitEmpty: true}},
	{"bytes-body", EncodingMsgpack, Switches{BytesBody: true}},
	{"int-created", EncodingMsgpack, Switches{IntCreated: true}},
	{"edited-zero", EncodingMsgpack, Switches{EditedZero: true}},
	{"untagged", EncodingMsgpack, Switches{Untagged: true}},
	{"protobuf", EncodingProtobuf, Switches{}},
}

// Difference is one expected difference (path and kind, docs/verdicts.md).
type Difference struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// Expected is the verdict this writer's author expects the verifier to give when the
// sister event is compared with a correct production event of the same change.
type Expected struct {
	Verdict     string       `json:"verdict"`
	Side        string       `json:"side,omitempty"`
	Differences []Difference `json:"differences,omitempty"`
}

// ManifestEntry describes one vector file.
type ManifestEntry struct {
	Variant  string   `json:"variant"`
	Encoding string   `json:"encoding"`
	EventID  string   `json:"event_id"`
	File     string   `json:"file"`
	Expected Expected `json:"expected"`
}

var (
	match             = Expected{Verdict: "match"}
	undecodableSister = Expected{Verdict: "undecodable", Side: "sister"}
)

func mismatch(diffs ...Difference) Expected {
	if len(diffs) == 0 {
		return match
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Path < diffs[j].Path })
	return Expected{Verdict: "mismatch", Differences: diffs}
}

// ExpectedVerdict is what docs/verdicts.md implies for a single-switch variant and a change
// (computed per change from its values, independently of the encoded bytes).
func ExpectedVerdict(v Variant, c *ScenarioComment) Expected {
	s := v.Switches
	switch {
	case v.Encoding == EncodingProtobuf || !s.Any():
		return match
	case s.NilAwards, s.TimeCreated, s.BytesBody, s.Untagged:
		// nil where a list is required; ext -1; bin where str is required; missing
		// required keys ("id" is "ID").
		return undecodableSister
	case s.OmitEmpty:
		if omitEmptyDrops(c) {
			return undecodableSister // a missing required key
		}
		return match
	case s.IntCreated:
		return mismatch(Difference{"/created_utc", "type"}) // int vs float
	case s.EditedZero:
		if c.Edited == nil {
			return mismatch(Difference{"/edited", "type"}) // 0 vs False: equal, types differ
		}
		return match
	case s.Float32:
		// A float32 decodes to a Python float: equal value when x is exact in float32
		// (the verifier still names the float32-vs-float64 wire type: "type"),
		// a different value otherwise.
		diffs := []Difference{float32Difference("/created_utc", c.CreatedUTC)}
		if c.Edited != nil {
			diffs = append(diffs, float32Difference("/edited", *c.Edited))
		}
		return mismatch(diffs...)
	}
	panic(fmt.Sprintf("no expectation for variant %s", v.Name))
}

func float32Difference(path string, x float64) Difference {
	if float64(float32(x)) == x {
		return Difference{path, "type"}
	}
	return Difference{path, "value"}
}

// omitEmptyDrops reports whether the omitempty shape drops a key the legacy consumer
// requires: a zero value at top level or in a list item (vmihailenco/msgpack's
// emptiness: "", 0, 0.0, false, nil pointer, nil or empty slice). `u` of a rich-text
// span is optional, and a nil pointer there is absent in the correct shape too.
func omitEmptyDrops(c *ScenarioComment) bool {
	if c.ID == "" || c.LinkID == "" || c.ParentID == "" || c.SubredditID == "" ||
		c.AuthorID == "" || c.Body == "" || c.ApprovalState == "" {
		return true
	}
	if len(c.RichText) == 0 || len(c.Media) == 0 || len(c.Awards) == 0 {
		return true // nil or empty list
	}
	if c.Score == 0 || c.Ups == 0 || c.Downs == 0 || c.Gilded == 0 {
		return true
	}
	if !c.AutomodFiltered || !c.Stickied || c.Distinguished == nil || c.Edited == nil ||
		*c.Edited == 0 || c.CreatedUTC == 0 {
		return true
	}
	for _, r := range c.RichText {
		if r.E == "" || r.T == "" {
			return true
		}
	}
	for _, m := range c.Media {
		if m.Type == "" || m.URL == "" || m.Width == 0 || m.Height == 0 || m.ContentType == "" {
			return true
		}
	}
	for _, a := range c.Awards {
		if a.AwardID == "" || a.Count == 0 {
			return true
		}
	}
	return false
}

// BuildVectors encodes the first VectorChanges changes in every variant.
// It returns the manifest (sorted by variant, then event_id) and the payloads by file.
func BuildVectors(changes []Change) ([]ManifestEntry, map[string][]byte, error) {
	if len(changes) < VectorChanges {
		return nil, nil, fmt.Errorf("the scenario has %d changes; vectors need at least %d",
			len(changes), VectorChanges)
	}
	var manifest []ManifestEntry
	files := map[string][]byte{}
	for _, v := range Variants {
		for i := 0; i < VectorChanges; i++ {
			c := &changes[i]
			if c.Entity != EntityComment {
				return nil, nil, fmt.Errorf("vectors cover comments; change %d (line %d) is of entity %q",
					i, c.Line, c.Entity)
			}
			payload, err := EncodePayload(&c.Comment, v.Encoding, v.Switches)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, event %s: %w", v.Name, c.EventID, err)
			}
			file := v.Name + "/" + c.EventID + ".bin"
			if _, dup := files[file]; dup {
				return nil, nil, fmt.Errorf("event_id %s appears twice in the first %d changes",
					c.EventID, VectorChanges)
			}
			files[file] = payload
			manifest = append(manifest, ManifestEntry{
				Variant:  v.Name,
				Encoding: string(v.Encoding),
				EventID:  c.EventID,
				File:     file,
				Expected: ExpectedVerdict(v, &c.Comment),
			})
		}
	}
	sort.Slice(manifest, func(i, j int) bool {
		if manifest[i].Variant != manifest[j].Variant {
			return manifest[i].Variant < manifest[j].Variant
		}
		return manifest[i].EventID < manifest[j].EventID
	})
	return manifest, files, nil
}

// ManifestJSON renders the manifest: stable field order, 2-space indent, trailing newline.
func ManifestJSON(manifest []ManifestEntry) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(manifest); err != nil { // Encode adds the trailing newline
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteVectors writes DIR/<variant>/<event_id>.bin and DIR/manifest.json. Stale
// .bin files in the variant directories are removed, so DIR mirrors the scenario.
func WriteVectors(dir string, changes []Change) (int, error) {
	manifest, files, err := BuildVectors(changes)
	if err != nil {
		return 0, err
	}
	body, err := ManifestJSON(manifest)
	if err != nil {
		return 0, err
	}
	for _, v := range Variants {
		sub := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return 0, err
		}
		stale, err := filepath.Glob(filepath.Join(sub, "*.bin"))
		if err != nil {
			return 0, err
		}
		for _, path := range stale {
			rel := v.Name + "/" + filepath.Base(path)
			if _, keep := files[rel]; !keep {
				if err := os.Remove(path); err != nil {
					return 0, err
				}
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), files[name], 0o644); err != nil {
			return 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), body, 0o644); err != nil {
		return 0, err
	}
	return len(files), nil
}
