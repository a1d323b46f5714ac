package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// Change is one row version of the plan (tests/rowcdc/plan.py writes it): the whole row
// in Values, in the plan's JSON form, and what the sister does with it.
type Change struct {
	Seq       *int            `json:"seq"`        // production's order; nil: sister-only
	SisterSeq *int            `json:"sister_seq"` // this writer's order; nil: skipped
	Table     string          `json:"table"`
	Op        string          `json:"op"` // insert, update, delete
	Key       []int64         `json:"key"`
	Version   int64           `json:"version"`
	Values    json.RawMessage `json:"values"`
	Fault     string          `json:"fault"`
	Benign    string          `json:"benign"`
	Race      string          `json:"race"`
	JoinKey   string          `json:"join_key"`
}

type Plan struct {
	Format  string   `json:"format"`
	Seed    int      `json:"seed"`
	Changes []Change `json:"changes"`
}

const planFormat = "cdc-verify/rowcdc-plan/1"

func loadPlan(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var plan Plan
	if err := json.Unmarshal(data, &plan); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if plan.Format != planFormat {
		return nil, fmt.Errorf("%s: format %q, not %q", path, plan.Format, planFormat)
	}
	return &plan, nil
}

// SisterOrder is the changes this writer applies, in its order: a skipped one is left out.
func (p *Plan) SisterOrder() []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.SisterSeq != nil {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return *out[i].SisterSeq < *out[j].SisterSeq })
	return out
}
