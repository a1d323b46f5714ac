package main

// The msgpack wire shapes of a comment, one Go struct family per shape of struct
// tags. vmihailenco/msgpack encodes a struct as a map whose keys come from the
// `msgpack` tags, in field declaration order; the fields below are declared in
// the key order of docs/wire-format.md, so the default shape encodes byte for byte what the
// Python legacy writer (msgpack.packb of a dict in that order) encodes.
//
// Three fields hold `any`, because the value-type divergence switches put a
// different Go type there (all encoded by the library from that Go value):
//
//	Body        string              ([]byte under -bytes-body: msgpack bin)
//	Edited      bool false | float64 (float32 under -float32, int 0 under -edited-zero)
//	CreatedUTC  float64             (float32, time.Time or int64 under the switches)

// Comment is the correct shape: the keys of docs/wire-format.md as msgpack tags.
type Comment struct {
	ID              string     `msgpack:"id"`
	LinkID          string     `msgpack:"link_id"`
	ParentID        string     `msgpack:"parent_id"`
	SubredditID     string     `msgpack:"subreddit_id"`
	AuthorID        string     `msgpack:"author_id"`
	Body            any        `msgpack:"body"`
	RichText        []RichText `msgpack:"rich_text"` // nil slice: msgpack nil
	Media           []Media    `msgpack:"media"`     // nil slice: msgpack nil
	Score           int64      `msgpack:"score"`
	Ups             int64      `msgpack:"ups"`
	Downs           int64      `msgpack:"downs"`
	Gilded          int64      `msgpack:"gilded"`
	Awards          []Award    `msgpack:"awards"` // must be non-nil (empty array), nil is undecodable
	ApprovalState   string     `msgpack:"approval_state"`
	AutomodFiltered bool       `msgpack:"automod_filtered"`
	Stickied        bool       `msgpack:"stickied"`
	Distinguished   *string    `msgpack:"distinguished"` // nil pointer: msgpack nil
	Edited          any        `msgpack:"edited"`
	CreatedUTC      any        `msgpack:"created_utc"`
}

// RichText is one rich-text span; `u` is only present when set.
type RichText struct {
	E string  `msgpack:"e"`
	T string  `msgpack:"t"`
	U *string `msgpack:"u,omitempty"`
}

// Media is one media attachment.
type Media struct {
	Type        string `msgpack:"type"`
	URL         string `msgpack:"url"`
	Width       int64  `msgpack:"width"`
	Height      int64  `msgpack:"height"`
	ContentType string `msgpack:"content_type"`
}

// Award is one award.
type Award struct {
	AwardID string `msgpack:"award_id"`
	Count   int64  `msgpack:"count"`
}

// CommentOmitEmpty is the -omitempty shape: the same keys, every tag `omitempty`
// (the Go habit borrowed from encoding/json), so zero values vanish from the map:
// score 0, gilded 0, false bools, nil or empty lists, nil distinguished, edited false.
type CommentOmitEmpty struct {
	ID              string              `msgpack:"id,omitempty"`
	LinkID          string              `msgpack:"link_id,omitempty"`
	ParentID        string              `msgpack:"parent_id,omitempty"`
	SubredditID     string              `msgpack:"subreddit_id,omitempty"`
	AuthorID        string              `msgpack:"author_id,omitempty"`
	Body            any                 `msgpack:"body,omitempty"`
	RichText        []RichTextOmitEmpty `msgpack:"rich_text,omitempty"`
	Media           []MediaOmitEmpty    `msgpack:"media,omitempty"`
	Score           int64               `msgpack:"score,omitempty"`
	Ups             int64               `msgpack:"ups,omitempty"`
	Downs           int64               `msgpack:"downs,omitempty"`
	Gilded          int64               `msgpack:"gilded,omitempty"`
	Awards          []AwardOmitEmpty    `msgpack:"awards,omitempty"`
	ApprovalState   string              `msgpack:"approval_state,omitempty"`
	AutomodFiltered bool                `msgpack:"automod_filtered,omitempty"`
	Stickied        bool                `msgpack:"stickied,omitempty"`
	Distinguished   *string             `msgpack:"distinguished,omitempty"`
	Edited          any                 `msgpack:"edited,omitempty"`
	CreatedUTC      any                 `msgpack:"created_utc,omitempty"`
}

// RichTextOmitEmpty is RichText with every tag `omitempty`.
type RichTextOmitEmpty struct {
	E string  `msgpack:"e,omitempty"`
	T string  `msgpack:"t,omitempty"`
	U *string `msgpack:"u,omitempty"`
}

// MediaOmitEmpty is Media with every tag `omitempty`.
type MediaOmitEmpty struct {
	Type        string `msgpack:"type,omitempty"`
	URL         string `msgpack:"url,omitempty"`
	Width       int64  `msgpack:"width,omitempty"`
	Height      int64  `msgpack:"height,omitempty"`
	ContentType string `msgpack:"content_type,omitempty"`
}

// AwardOmitEmpty is Award with every tag `omitempty`.
type AwardOmitEmpty struct {
	AwardID string `msgpack:"award_id,omitempty"`
	Count   int64  `msgpack:"count,omitempty"`
}

// CommentUntagged is the -untagged shape: no msgpack tags at all, so the library
// uses the Go field names as keys ("ID", "LinkID", ...).
type CommentUntagged struct {
	ID              string
	LinkID          string
	ParentID        string
	SubredditID     string
	AuthorID        string
	Body            any
	RichText        []RichTextUntagged
	Media           []MediaUntagged
	Score           int64
	Ups             int64
	Downs           int64
	Gilded          int64
	Awards          []AwardUntagged
	ApprovalState   string
	AutomodFiltered bool
	Stickied        bool
	Distinguished   *string
	Edited          any
	CreatedUTC      any
}

// RichTextUntagged is RichText without tags.
type RichTextUntagged struct {
	E string
	T string
	U *string
}

// MediaUntagged is Media without tags.
type MediaUntagged struct {
	Type        string
	URL         string
	Width       int64
	Height      int64
	ContentType string
}

// AwardUntagged is Award without tags.
type AwardUntagged struct {
	AwardID string
	Count   int64
}
