package main

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// What pgx v5 sends for each fault, checked on its own encoder (binary format, as pgx
// uses for a prepared statement's typed parameters): the faults are made on purpose.

func encode(t *testing.T, oid uint32, value any) []byte {
	t.Helper()
	buf, err := pgtype.NewMap().Encode(oid, pgtype.BinaryFormatCode, value, nil)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// A binary numeric: ndigits, weight, sign, dscale (int16 each), then the digits.
func dscale(buf []byte) int16 { return int16(binary.BigEndian.Uint16(buf[6:8])) }

func TestNumericScale(t *testing.T) {
	exact, err := numeric("12.50")
	if err != nil {
		t.Fatal(err)
	}
	if got := dscale(encode(t, pgtype.NumericOID, exact)); got != 2 {
		t.Errorf("Numeric from \"12.50\": dscale %d, want 2", got)
	}
	if got := dscale(encode(t, pgtype.NumericOID, 12.5)); got != 1 {
		t.Errorf("float64 12.50: dscale %d, want 1", got)
	}
	if got := dscale(encode(t, pgtype.NumericOID, 7.0)); got != 0 {
		t.Errorf("float64 7.00: dscale %d, want 0", got)
	}
}

// A binary timestamp: microseconds since 2000-01-01 00:00, of the value's wall time.
func micros(buf []byte) int64 { return int64(binary.BigEndian.Uint64(buf)) }

func TestTimestampWallTime(t *testing.T) {
	at := time.Date(2025, 2, 14, 21, 1, 20, 502789123, time.UTC)
	utc := micros(encode(t, pgtype.TimestampOID, at))
	if got := micros(encode(t, pgtype.TimestampOID, at.In(sisterZone))); got != utc-5*3600e6 {
		t.Errorf("wall time in UTC-5: %d, want %d", got, utc-5*3600e6)
	}
	if utc%1e6 != 502789 {
		t.Errorf("UTC: %d µs past the second, want 502789 (nanoseconds cut)", utc%1e6)
	}
	if got := micros(encode(t, pgtype.TimestampOID, at.Truncate(time.Millisecond))); got%1e6 != 502000 {
		t.Errorf("truncated: %d µs past the second, want 502000", got%1e6)
	}
	// A timestamptz is the instant: another zone sends the same microseconds.
	if micros(encode(t, pgtype.TimestamptzOID, at.In(otherZone))) != micros(encode(t, pgtype.TimestamptzOID, at)) {
		t.Error("timestamptz in another zone: another instant")
	}
}

func TestJSONBNumbers(t *testing.T) {
	raw := json.RawMessage(`{"weight":3.0}`)
	if got := string(encode(t, pgtype.JSONBOID, raw)[1:]); got != `{"weight":3.0}` {
		t.Errorf("raw: %s", got) // after the jsonb version byte: the text as given
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if got := string(encode(t, pgtype.JSONBOID, meta)[1:]); got != `{"weight":3}` {
		t.Errorf("marshalled: %s, want the float as 3", got)
	}
}

func TestStatementAppliesTheFault(t *testing.T) {
	values := `{"id":4,"version":2,"body":"b","note":null,"score":"12.50","amount":"12.50",` +
		`"ratio":3.0,"meta":{"weight":3.0},"tags":[],"blob":"00ff","uid":` +
		`"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","day":"2025-01-02",` +
		`"edited_at":"2025-02-14T21:01:20.502789","created_at":"2025-02-14T21:01:19.000000+00:00"}`
	change := Change{Table: "comments", Op: "update", Key: []int64{4}, Version: 2,
		Values: json.RawMessage(values)}
	query, params, err := statement(change)
	if err != nil {
		t.Fatal(err)
	}
	want := "UPDATE public.comments SET version = $1, body = $2, note = $3, score = $4"
	if !strings.HasPrefix(query, want) || !strings.HasSuffix(query, " WHERE id = $14") {
		t.Errorf("query: %s", query)
	}
	if len(params) != 14 || params[13] != int64(4) {
		t.Errorf("params: %v", params)
	}
	for fault, check := range map[string]func([]any) bool{
		"numeric_scale":      func(p []any) bool { return p[4] == 12.5 },
		"null_as_empty":      func(p []any) bool { return p[2] == "" },
		"timestamp_zone":     func(p []any) bool { return p[11].(time.Time).Location() == sisterZone },
		"json_int_for_float": func(p []any) bool { _, ok := p[6].(map[string]any); return ok },
	} {
		change.Fault = fault
		_, params, err := statement(change)
		if err != nil || !check(params) {
			t.Errorf("%s: %v %v", fault, err, params)
		}
	}
}
