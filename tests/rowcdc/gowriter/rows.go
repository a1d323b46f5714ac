package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The sister's clock for the timestamp_zone fault: UTC-5 (plan.py's ZONE_SHIFT).
var sisterZone = time.FixedZone("UTC-5", -5*3600)

// Another zone for created_at (benign: a timestamptz is an instant, whatever the zone).
var otherZone = time.FixedZone("UTC+9", 9*3600)

const wallLayout = "2006-01-02T15:04:05.999999" // a timestamp's UTC wall time, no zone

// Columns in the order of tests/rowcdc/schema.py's COLUMNS; keys first.
var columns = map[string][]string{
	"comments": {"id", "version", "body", "note", "score", "amount", "ratio", "meta", "tags",
		"blob", "uid", "day", "edited_at", "created_at"},
	"votes": {"comment_id", "user_id", "version", "value", "reason", "cast_at"},
}

var keys = map[string][]string{"comments": {"id"}, "votes": {"comment_id", "user_id"}}

// A comment as the new service holds it, decoded from the plan's JSON form.
type comment struct {
	ID        int64           `json:"id"`
	Version   int64           `json:"version"`
	Body      string          `json:"body"`
	Note      *string         `json:"note"`
	Score     string          `json:"score"`
	Amount    string          `json:"amount"`
	Ratio     float64         `json:"ratio"`
	Meta      json.RawMessage `json:"meta"`
	Tags      []string        `json:"tags"`
	Blob      string          `json:"blob"`
	UID       string          `json:"uid"`
	Day       string          `json:"day"`
	EditedAt  string          `json:"edited_at"`
	CreatedAt string          `json:"created_at"`
}

type vote struct {
	CommentID int64   `json:"comment_id"`
	UserID    int64   `json:"user_id"`
	Version   int64   `json:"version"`
	Value     int32   `json:"value"`
	Reason    *string `json:"reason"`
	CastAt    string  `json:"cast_at"`
}

func numeric(text string) (pgtype.Numeric, error) {
	var n pgtype.Numeric
	// Scanned from its text, a Numeric keeps the scale written ("12.50": Exp -2), and pgx
	// sends it as the dscale: Postgres stores 12.50.
	err := n.Scan(text)
	return n, err
}

// rowArgs is the row's values as pgx parameters, column by column, with the change's
// fault or benign variant applied: every departure from the plan is made here, on purpose.
func rowArgs(c Change) (map[string]any, error) {
	switch c.Table {
	case "comments":
		var v comment
		if err := json.Unmarshal(c.Values, &v); err != nil {
			return nil, err
		}
		return commentArgs(c, v)
	case "votes":
		var v vote
		if err := json.Unmarshal(c.Values, &v); err != nil {
			return nil, err
		}
		castAt, err := time.Parse(time.RFC3339Nano, v.CastAt)
		if err != nil {
			return nil, err
		}
		args := map[string]any{"comment_id": v.CommentID, "user_id": v.UserID,
			"version": v.Version, "value": v.Value, "reason": v.Reason, "cast_at": castAt}
		if c.Fault == "null_as_empty" {
			args["reason"] = emptyForNull(v.Reason)
		}
		return args, nil
	}
	return nil, fmt.Errorf("unknown table %q", c.Table)
}

func commentArgs(c Change, v comment) (map[string]any, error) {
	score, err := numeric(v.Score)
	if err != nil {
		return nil, err
	}
	amount, err := numeric(v.Amount)
	if err != nil {
		return nil, err
	}
	blob, err := hex.DecodeString(v.Blob)
	if err != nil {
		return nil, err
	}
	var uid pgtype.UUID
	if err := uid.Scan(v.UID); err != nil {
		return nil, err
	}
	day, err := time.Parse(time.DateOnly, v.Day)
	if err != nil {
		return nil, err
	}
	// time.Parse without a zone gives UTC: pgx writes a time.Time's wall time in its own
	// location into a timestamp (the zone is dropped), so UTC here is the plan's wall time.
	editedAt, err := time.Parse(wallLayout, v.EditedAt)
	if err != nil {
		return nil, err
	}
	createdAt, err := time.Parse(time.RFC3339Nano, v.CreatedAt)
	if err != nil {
		return nil, err
	}
	args := map[string]any{"id": v.ID, "version": v.Version, "body": v.Body, "note": v.Note,
		"score": score, "amount": amount, "ratio": v.Ratio,
		"meta": v.Meta, // json.RawMessage: pgx sends the plan's JSON text as it is
		"tags": v.Tags, "blob": blob, "uid": uid, "day": day, "edited_at": editedAt,
		"created_at": createdAt}
	if v.Tags == nil {
		args["tags"] = []string{} // an empty array, not NULL
	}
	switch c.Fault {
	case "":
	case "numeric_scale":
		// A float64 into a numeric: pgx formats it shortest (strconv 'f', -1), so 12.50
		// is sent as 12.5 (dscale 1) and the unconstrained column keeps that.
		f, err := strconv.ParseFloat(v.Amount, 64)
		if err != nil {
			return nil, err
		}
		args["amount"] = f
	case "timestamp_zone":
		args["edited_at"] = editedAt.In(sisterZone) // its wall time, 5 h earlier
	case "timestamp_precision":
		args["edited_at"] = editedAt.Truncate(time.Millisecond)
	case "null_as_empty":
		args["note"] = emptyForNull(v.Note)
	case "json_int_for_float":
		// Decoded into a map and marshalled again by pgx (encoding/json): 3.0 becomes 3,
		// and jsonb keeps the number's text.
		var meta map[string]any
		if err := json.Unmarshal(v.Meta, &meta); err != nil {
			return nil, err
		}
		args["meta"] = meta
	case "skip", "rogue_insert", "rogue_update", "rogue_delete":
	default:
		return nil, fmt.Errorf("%s: unknown fault %q", c.JoinKey, c.Fault)
	}
	switch c.Benign {
	case "":
	case "fixed_scale": // 12.50 as 12.5 (a float64): numeric(12,2) stores 12.50 again
		f, err := strconv.ParseFloat(v.Score, 64)
		if err != nil {
			return nil, err
		}
		args["score"] = f
	case "timestamptz_zone": // the same instant: pgx sends microseconds since 2000 UTC
		args["created_at"] = createdAt.In(otherZone)
	case "float_from_int": // an int64 into a double precision: the same double
		args["ratio"] = int64(v.Ratio)
	default:
		return nil, fmt.Errorf("%s: unknown benign variant %q", c.JoinKey, c.Benign)
	}
	return args, nil
}

// The new service's bug: a plain string where the column takes NULL.
func emptyForNull(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// statement is the change's SQL and its parameters.
func statement(c Change) (string, []any, error) {
	cols, key := columns[c.Table], keys[c.Table]
	if cols == nil {
		return "", nil, fmt.Errorf("%s: unknown table %q", c.JoinKey, c.Table)
	}
	args, err := rowArgs(c)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", c.JoinKey, err)
	}
	var params []any
	placeholder := func(column string) string {
		params = append(params, args[column])
		return "$" + strconv.Itoa(len(params))
	}
	where := ""
	whereKey := func() {
		for i, k := range key {
			if i > 0 {
				where += " AND "
			}
			where += k + " = " + placeholder(k)
		}
	}
	table := "public." + c.Table
	switch c.Op {
	case "insert":
		names, values := "", ""
		for i, col := range cols {
			if i > 0 {
				names, values = names+", ", values+", "
			}
			names += col
			values += placeholder(col)
		}
		return "INSERT INTO " + table + " (" + names + ") VALUES (" + values + ")", params, nil
	case "update":
		sets := ""
		for _, col := range cols[len(key):] {
			if sets != "" {
				sets += ", "
			}
			sets += col + " = " + placeholder(col)
		}
		whereKey()
		return "UPDATE " + table + " SET " + sets + " WHERE " + where, params, nil
	case "delete":
		whereKey()
		return "DELETE FROM " + table + " WHERE " + where, params, nil
	}
	return "", nil, fmt.Errorf("%s: unknown op %q", c.JoinKey, c.Op)
}
