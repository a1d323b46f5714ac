package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Entities a scenario change can be of; the model sits under the key of its name.
const (
	EntityComment = "comment"
	EntityAccount = "account"
)

// Change is one logical change of a scenario file (one JSON line).
type Change struct {
	EventID  string
	Entity   string // EntityComment (also when the line has no "entity") or EntityAccount
	EntityID string
	Op       string
	Version  int64
	TsMs     int64
	Comment  ScenarioComment // when Entity is EntityComment
	Account  ScenarioAccount // when Entity is EntityAccount
	Line     int             // 1-based line number in the scenario file, for messages
}

// ScenarioComment is the comment as the scenario carries it: the msgpack map of docs/wire-format.md
// with JSON types. It is the service's in-memory model; the encoders in this package
// turn it into the wire shapes.
type ScenarioComment struct {
	ID              string
	LinkID          string
	ParentID        string
	SubredditID     string
	AuthorID        string
	Body            string
	RichText        []ScenarioRichText // nil: JSON null
	Media           []ScenarioMedia    // nil: JSON null
	Score           int64
	Ups             int64
	Downs           int64
	Gilded          int64
	Awards          []ScenarioAward // never nil after parsing
	ApprovalState   string
	AutomodFiltered bool
	Stickied        bool
	Distinguished   *string // nil: JSON null
	Edited          *float64
	CreatedUTC      float64
}

// IsEdited reports whether `edited` is a number (not false).
func (c *ScenarioComment) IsEdited() bool { return c.Edited != nil }

// ScenarioRichText is one rich-text span; U is nil when the span has no `u` key.
type ScenarioRichText struct {
	E string
	T string
	U *string
}

// ScenarioMedia is one media attachment.
type ScenarioMedia struct {
	Type        string
	URL         string
	Width       int64
	Height      int64
	ContentType string
}

// ScenarioAward is one award.
type ScenarioAward struct {
	AwardID string
	Count   int64
}

// commentKeys are the 19 documented keys, all required in a scenario comment.
var commentKeys = []string{
	"id", "link_id", "parent_id", "subreddit_id", "author_id", "body", "rich_text",
	"media", "score", "ups", "downs", "gilded", "awards", "approval_state",
	"automod_filtered", "stickied", "distinguished", "edited", "created_utc",
}

// ScenarioAccount is the account as the scenario carries it (docs/wire-format.md,
// "Accounts"): the service's in-memory model of the second entity.
type ScenarioAccount struct {
	ID             string
	Name           string
	IconURL        *string // nil: JSON null
	CreatedUTC     float64
	LinkKarma      int64
	CommentKarma   int64
	IsSuspended    bool
	SuspendedUntil *float64 // nil: JSON null
	EmailVerified  bool
	HasPremium     bool
	Trophies       []ScenarioTrophy // never nil after parsing
}

// ScenarioTrophy is one trophy of an account.
type ScenarioTrophy struct {
	TrophyID   string
	GrantedUTC float64
}

// accountKeys are the 11 documented keys, all required in a scenario account.
var accountKeys = []string{
	"id", "name", "icon_url", "created_utc", "link_karma", "comment_karma", "is_suspended",
	"suspended_until", "email_verified", "has_premium", "trophies",
}

// changeKeys are required in every line, and the key named by "entity" as well.
var changeKeys = []string{"event_id", "entity_id", "op", "version", "ts_ms"}

// ReadScenario reads every change of a JSON-lines scenario file.
func ReadScenario(path string) ([]Change, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseScenario(f, path)
}

func parseScenario(r io.Reader, name string) ([]Change, error) {
	var out []Change
	reader := bufio.NewReaderSize(r, 1<<16)
	lineNo := 0
	var lastTs int64 = -1
	for {
		line, err := reader.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if len(bytes.TrimSpace(line)) > 0 {
				change, perr := parseChange(line)
				if perr != nil {
					return nil, fmt.Errorf("%s:%d: %w", name, lineNo, perr)
				}
				change.Line = lineNo
				if change.TsMs <= lastTs {
					return nil, fmt.Errorf("%s:%d: ts_ms %d is not greater than the previous change's %d"+
						" (explicit stream ids <ts_ms>-0 need strictly increasing ts_ms)",
						name, lineNo, change.TsMs, lastTs)
				}
				lastTs = change.TsMs
				out = append(out, change)
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lineNo+1, err)
		}
	}
}

// rawObject decodes a JSON object into its raw members, requiring exactly `keys`
// (unknown keys are an error when strict).
func rawObject(data []byte, what string, keys []string, optional []string, strict bool) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: null where an object is required", what)
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
		if _, ok := obj[k]; !ok {
			return nil, fmt.Errorf("%s: missing key %q", what, k)
		}
	}
	for _, k := range optional {
		known[k] = true
	}
	if strict {
		var unknown []string
		for k := range obj {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, fmt.Errorf("%s: unknown keys %s", what, strings.Join(unknown, ", "))
		}
	}
	return obj, nil
}

// decodeString decodes a JSON string (null or any other type is an error). The
// decode* helpers below keep numbers exact: json.Number, then strconv.
func decodeString(raw json.RawMessage, what string) (string, error) {
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil || s == nil {
		return "", fmt.Errorf("%s: %s where a string is required", what, short(raw))
	}
	return *s, nil
}

func decodeNumber(raw json.RawMessage, what string) (json.Number, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	n, ok := v.(json.Number)
	if !ok {
		return "", fmt.Errorf("%s: %s where a number is required", what, short(raw))
	}
	return n, nil
}

func decodeInt(raw json.RawMessage, what string) (int64, error) {
	n, err := decodeNumber(raw, what)
	if err != nil {
		return 0, err
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s where an int is required", what, n)
	}
	return i, nil
}

func decodeFloat(raw json.RawMessage, what string) (float64, error) {
	n, err := decodeNumber(raw, what)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s is not a float64", what, n)
	}
	return f, nil
}

func decodeBool(raw json.RawMessage, what string) (bool, error) {
	var b *bool
	if err := json.Unmarshal(raw, &b); err != nil || b == nil {
		return false, fmt.Errorf("%s: %s where a bool is required", what, short(raw))
	}
	return *b, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func decodeList(raw json.RawMessage, what string) ([]json.RawMessage, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, fmt.Errorf("%s: %s where a list is required", what, short(raw))
	}
	return items, nil
}

func short(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func parseChange(line []byte) (Change, error) {
	var c Change
	obj, err := rawObject(line, "change", changeKeys, nil, false)
	if err != nil {
		return c, err
	}
	if c.EventID, err = decodeString(obj["event_id"], "event_id"); err != nil {
		return c, err
	}
	if c.EntityID, err = decodeString(obj["entity_id"], "entity_id"); err != nil {
		return c, err
	}
	if c.Op, err = decodeString(obj["op"], "op"); err != nil {
		return c, err
	}
	if c.Version, err = decodeInt(obj["version"], "version"); err != nil {
		return c, err
	}
	if c.TsMs, err = decodeInt(obj["ts_ms"], "ts_ms"); err != nil {
		return c, err
	}
	if len(c.EventID) != 26 {
		return c, fmt.Errorf("event_id %q is not a 26-char ULID", c.EventID)
	}
	if c.Version < 1 {
		return c, fmt.Errorf("version %d < 1", c.Version)
	}
	if c.TsMs < 0 {
		return c, fmt.Errorf("ts_ms %d < 0", c.TsMs)
	}
	c.Entity = EntityComment // lines written before accounts existed have no "entity"
	if raw, ok := obj["entity"]; ok {
		if c.Entity, err = decodeString(raw, "entity"); err != nil {
			return c, err
		}
	}
	model, ok := obj[c.Entity]
	switch {
	case c.Entity != EntityComment && c.Entity != EntityAccount:
		return c, fmt.Errorf("entity %q: want %s or %s", c.Entity, EntityComment, EntityAccount)
	case !ok:
		return c, fmt.Errorf("change: missing key %q (the %s entity's map)", c.Entity, c.Entity)
	case c.Entity == EntityAccount:
		c.Account, err = parseAccount(model)
	default:
		c.Comment, err = parseComment(model)
	}
	return c, err
}

func parseAccount(data json.RawMessage) (ScenarioAccount, error) {
	var a ScenarioAccount
	obj, err := rawObject(data, "account", accountKeys, nil, true)
	if err != nil {
		return a, err
	}
	for _, s := range []struct {
		key string
		dst *string
	}{{"id", &a.ID}, {"name", &a.Name}} {
		if *s.dst, err = decodeString(obj[s.key], "account/"+s.key); err != nil {
			return a, err
		}
	}
	for _, i := range []struct {
		key string
		dst *int64
	}{{"link_karma", &a.LinkKarma}, {"comment_karma", &a.CommentKarma}} {
		if *i.dst, err = decodeInt(obj[i.key], "account/"+i.key); err != nil {
			return a, err
		}
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"is_suspended", &a.IsSuspended}, {"email_verified", &a.EmailVerified}, {"has_premium", &a.HasPremium}} {
		if *b.dst, err = decodeBool(obj[b.key], "account/"+b.key); err != nil {
			return a, err
		}
	}
	if a.CreatedUTC, err = decodeFloat(obj["created_utc"], "account/created_utc"); err != nil {
		return a, err
	}
	if !isNull(obj["icon_url"]) {
		icon, ierr := decodeString(obj["icon_url"], "account/icon_url")
		if ierr != nil {
			return a, ierr
		}
		a.IconURL = &icon
	}
	if !isNull(obj["suspended_until"]) {
		until, uerr := decodeFloat(obj["suspended_until"], "account/suspended_until")
		if uerr != nil {
			return a, uerr
		}
		a.SuspendedUntil = &until
	}
	items, err := decodeList(obj["trophies"], "account/trophies")
	if err != nil {
		return a, err
	}
	a.Trophies = make([]ScenarioTrophy, 0, len(items))
	for i, item := range items {
		what := fmt.Sprintf("account/trophies/%d", i)
		o, oerr := rawObject(item, what, []string{"trophy_id", "granted_utc"}, nil, true)
		if oerr != nil {
			return a, oerr
		}
		var t ScenarioTrophy
		if t.TrophyID, err = decodeString(o["trophy_id"], what+"/trophy_id"); err != nil {
			return a, err
		}
		if t.GrantedUTC, err = decodeFloat(o["granted_utc"], what+"/granted_utc"); err != nil {
			return a, err
		}
		a.Trophies = append(a.Trophies, t)
	}
	return a, nil
}

func parseComment(data json.RawMessage) (ScenarioComment, error) {
	var c ScenarioComment
	obj, err := rawObject(data, "comment", commentKeys, nil, true)
	if err != nil {
		return c, err
	}
	strs := []struct {
		key string
		dst *string
	}{
		{"id", &c.ID}, {"link_id", &c.LinkID}, {"parent_id", &c.ParentID},
		{"subreddit_id", &c.SubredditID}, {"author_id", &c.AuthorID}, {"body", &c.Body},
		{"approval_state", &c.ApprovalState},
	}
	for _, s := range strs {
		if *s.dst, err = decodeString(obj[s.key], "comment/"+s.key); err != nil {
			return c, err
		}
	}
	ints := []struct {
		key string
		dst *int64
	}{{"score", &c.Score}, {"ups", &c.Ups}, {"downs", &c.Downs}, {"gilded", &c.Gilded}}
	for _, i := range ints {
		if *i.dst, err = decodeInt(obj[i.key], "comment/"+i.key); err != nil {
			return c, err
		}
	}
	if c.AutomodFiltered, err = decodeBool(obj["automod_filtered"], "comment/automod_filtered"); err != nil {
		return c, err
	}
	if c.Stickied, err = decodeBool(obj["stickied"], "comment/stickied"); err != nil {
		return c, err
	}
	if c.CreatedUTC, err = decodeFloat(obj["created_utc"], "comment/created_utc"); err != nil {
		return c, err
	}
	// edited: false, or a number (float seconds).
	if raw := obj["edited"]; string(bytes.TrimSpace(raw)) != "false" {
		f, ferr := decodeFloat(raw, "comment/edited")
		if ferr != nil {
			return c, fmt.Errorf("comment/edited: %s where false or a number is required", short(raw))
		}
		c.Edited = &f
	}
	if !isNull(obj["distinguished"]) {
		d, derr := decodeString(obj["distinguished"], "comment/distinguished")
		if derr != nil {
			return c, derr
		}
		c.Distinguished = &d
	}
	if !isNull(obj["rich_text"]) {
		items, lerr := decodeList(obj["rich_text"], "comment/rich_text")
		if lerr != nil {
			return c, lerr
		}
		c.RichText = make([]ScenarioRichText, 0, len(items))
		for i, item := range items {
			what := fmt.Sprintf("comment/rich_text/%d", i)
			o, oerr := rawObject(item, what, []string{"e", "t"}, []string{"u"}, true)
			if oerr != nil {
				return c, oerr
			}
			var r ScenarioRichText
			if r.E, err = decodeString(o["e"], what+"/e"); err != nil {
				return c, err
			}
			if r.T, err = decodeString(o["t"], what+"/t"); err != nil {
				return c, err
			}
			if raw, ok := o["u"]; ok {
				u, uerr := decodeString(raw, what+"/u")
				if uerr != nil {
					return c, uerr
				}
				r.U = &u
			}
			c.RichText = append(c.RichText, r)
		}
	}
	if !isNull(obj["media"]) {
		items, lerr := decodeList(obj["media"], "comment/media")
		if lerr != nil {
			return c, lerr
		}
		c.Media = make([]ScenarioMedia, 0, len(items))
		for i, item := range items {
			what := fmt.Sprintf("comment/media/%d", i)
			o, oerr := rawObject(item, what, []string{"type", "url", "width", "height", "content_type"}, nil, true)
			if oerr != nil {
				return c, oerr
			}
			var m ScenarioMedia
			if m.Type, err = decodeString(o["type"], what+"/type"); err != nil {
				return c, err
			}
			if m.URL, err = decodeString(o["url"], what+"/url"); err != nil {
				return c, err
			}
			if m.Width, err = decodeInt(o["width"], what+"/width"); err != nil {
				return c, err
			}
			if m.Height, err = decodeInt(o["height"], what+"/height"); err != nil {
				return c, err
			}
			if m.ContentType, err = decodeString(o["content_type"], what+"/content_type"); err != nil {
				return c, err
			}
			c.Media = append(c.Media, m)
		}
	}
	items, err := decodeList(obj["awards"], "comment/awards")
	if err != nil {
		return c, err
	}
	c.Awards = make([]ScenarioAward, 0, len(items))
	for i, item := range items {
		what := fmt.Sprintf("comment/awards/%d", i)
		o, oerr := rawObject(item, what, []string{"award_id", "count"}, nil, true)
		if oerr != nil {
			return c, oerr
		}
		var a ScenarioAward
		if a.AwardID, err = decodeString(o["award_id"], what+"/award_id"); err != nil {
			return c, err
		}
		if a.Count, err = decodeInt(o["count"], what+"/count"); err != nil {
			return c, err
		}
		c.Awards = append(c.Awards, a)
	}
	return c, nil
}
