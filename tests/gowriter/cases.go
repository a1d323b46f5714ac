package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
)

// casesFile is what `cdc-verify cases` writes (docs/coverage.md, "Test cases from
// production"): each case's stream fields (base64, which encoding/json decodes into
// []byte) and the event the legacy consumer decoded from them.
type casesFile struct {
	Cases []struct {
		EventID string            `json:"event_id"`
		Entity  string            `json:"entity"`
		Fields  map[string][]byte `json:"fields"`
		Decoded json.RawMessage   `json:"decoded"`
	} `json:"cases"`
}

// ReadCases reads a cases.json as scenario changes, one per case, in ts_ms order: the
// Go service's model of each real production event, which the encoders write again.
// Equal ts_ms values are moved a millisecond apart (explicit ids need increasing ones;
// ts_ms is no part of the decoded event).
func ReadCases(path string) ([]Change, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file casesFile
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	type line struct {
		ts   int64
		body map[string]any
	}
	lines := make([]line, 0, len(file.Cases))
	for i, c := range file.Cases {
		ints := map[string]int64{}
		for _, key := range []string{"version", "ts_ms"} {
			n, err := strconv.ParseInt(string(c.Fields[key]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: case %d (%s): field %s: %w", path, i+1, c.EventID, key, err)
			}
			ints[key] = n
		}
		lines = append(lines, line{ints["ts_ms"], map[string]any{
			"event_id": c.EventID, "entity": c.Entity, "entity_id": string(c.Fields["entity_id"]),
			"op": string(c.Fields["op"]), "version": ints["version"], c.Entity: c.Decoded,
		}})
	}
	sort.SliceStable(lines, func(a, b int) bool { return lines[a].ts < lines[b].ts })
	out := make([]Change, 0, len(lines))
	last := int64(-1)
	for i, l := range lines {
		if l.ts <= last {
			l.ts = last + 1
		}
		last = l.ts
		l.body["ts_ms"] = l.ts
		raw, err := json.Marshal(l.body)
		if err != nil {
			return nil, err
		}
		change, err := parseChange(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: case %d: %w", path, i+1, err)
		}
		change.Line = i + 1
		out = append(out, change)
	}
	return out, nil
}
