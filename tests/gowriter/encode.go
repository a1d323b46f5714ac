package main

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"

	"github.com/cdc-verify/cdc-verify/tests/gowriter/commentpb"
)

// Switches are the divergence switches: each reproduces a classic Go-to-Python
// divergence, with vmihailenco/msgpack doing the encoding from Go values.
type Switches struct {
	NilAwards   bool // Awards slice left nil: msgpack nil
	TimeCreated bool // created_utc as time.Time: msgpack ext -1
	Float32     bool // created_utc and a numeric edited as float32
	OmitEmpty   bool // `omitempty` struct tags: zero values dropped
	BytesBody   bool // body as []byte: msgpack bin
	IntCreated  bool // created_utc as int64 (truncated seconds)
	EditedZero  bool // edited as int 0 instead of false when not edited
	Untagged    bool // no msgpack tags: Go field names become keys
}

// Any reports whether any switch is on.
func (s Switches) Any() bool { return s != Switches{} }

// Validate rejects combinations that contradict each other. Everything else
// combines: e.g. -time-created with -float32 gives a time.Time created_utc and a
// float32 edited; -untagged with -omitempty gives an untagged struct encoded with
// the encoder's omit-empty flag.
func (s Switches) Validate() error {
	if s.TimeCreated && s.IntCreated {
		return fmt.Errorf("-time-created and -int-created both set created_utc's Go type; pick one")
	}
	return nil
}

// values are the Go values of the three polymorphic fields plus awards' nil-ness,
// chosen by the switches.
type values struct {
	body       any
	edited     any
	createdUTC any
	nilAwards  bool
}

func chooseValues(c *ScenarioComment, s Switches) values {
	v := values{body: c.Body, edited: false, createdUTC: c.CreatedUTC, nilAwards: s.NilAwards}
	if s.BytesBody {
		v.body = []byte(c.Body)
	}
	switch {
	case c.Edited == nil && s.EditedZero:
		v.edited = 0 // Go int 0: msgpack int
	case c.Edited == nil:
		v.edited = false
	case s.Float32:
		v.edited = float32(*c.Edited)
	default:
		v.edited = *c.Edited // float64 even when integral: msgpack float64
	}
	switch {
	case s.TimeCreated:
		v.createdUTC = secondsToTime(c.CreatedUTC)
	case s.IntCreated:
		v.createdUTC = int64(c.CreatedUTC) // truncated toward zero
	case s.Float32:
		v.createdUTC = float32(c.CreatedUTC)
	}
	return v
}

// secondsToTime turns float seconds since the epoch into a UTC time.Time
// (what a Go service would hold for a creation time).
func secondsToTime(seconds float64) time.Time {
	whole, frac := math.Modf(seconds)
	nanos := int64(math.Round(frac * 1e9))
	return time.Unix(int64(whole), nanos).UTC()
}

// BuildMsgpackValue builds the Go value the service hands to msgpack for a comment.
func BuildMsgpackValue(c *ScenarioComment, s Switches) any {
	v := chooseValues(c, s)
	switch {
	case s.Untagged:
		return untaggedShape(c, v)
	case s.OmitEmpty:
		return omitEmptyShape(c, v)
	default:
		return defaultShape(c, v)
	}
}

// convertAll converts each element; the shapes differ only in their struct tags, so a
// Go conversion carries every field across. It returns a non-nil slice: callers keep nil lists nil.
func convertAll[S, T any](in []S, convert func(S) T) []T {
	out := make([]T, 0, len(in))
	for _, s := range in {
		out = append(out, convert(s))
	}
	return out
}

func defaultShape(c *ScenarioComment, v values) *Comment {
	out := &Comment{
		ID: c.ID, LinkID: c.LinkID, ParentID: c.ParentID, SubredditID: c.SubredditID,
		AuthorID: c.AuthorID, Body: v.body,
		Score: c.Score, Ups: c.Ups, Downs: c.Downs, Gilded: c.Gilded,
		ApprovalState: c.ApprovalState, AutomodFiltered: c.AutomodFiltered, Stickied: c.Stickied,
		Distinguished: c.Distinguished, Edited: v.edited, CreatedUTC: v.createdUTC,
	}
	if c.RichText != nil {
		out.RichText = convertAll(c.RichText, func(r ScenarioRichText) RichText { return RichText(r) })
	}
	if c.Media != nil {
		out.Media = convertAll(c.Media, func(m ScenarioMedia) Media { return Media(m) })
	}
	if !v.nilAwards {
		out.Awards = convertAll(c.Awards, func(a ScenarioAward) Award { return Award(a) })
	}
	return out
}

func omitEmptyShape(c *ScenarioComment, v values) *CommentOmitEmpty {
	out := &CommentOmitEmpty{
		ID: c.ID, LinkID: c.LinkID, ParentID: c.ParentID, SubredditID: c.SubredditID,
		AuthorID: c.AuthorID, Body: v.body,
		Score: c.Score, Ups: c.Ups, Downs: c.Downs, Gilded: c.Gilded,
		ApprovalState: c.ApprovalState, AutomodFiltered: c.AutomodFiltered, Stickied: c.Stickied,
		Distinguished: c.Distinguished, Edited: v.edited, CreatedUTC: v.createdUTC,
	}
	if c.RichText != nil {
		out.RichText = convertAll(c.RichText, func(r ScenarioRichText) RichTextOmitEmpty { return RichTextOmitEmpty(r) })
	}
	if c.Media != nil {
		out.Media = convertAll(c.Media, func(m ScenarioMedia) MediaOmitEmpty { return MediaOmitEmpty(m) })
	}
	if !v.nilAwards {
		out.Awards = convertAll(c.Awards, func(a ScenarioAward) AwardOmitEmpty { return AwardOmitEmpty(a) })
	}
	return out
}

func untaggedShape(c *ScenarioComment, v values) *CommentUntagged {
	out := &CommentUntagged{
		ID: c.ID, LinkID: c.LinkID, ParentID: c.ParentID, SubredditID: c.SubredditID,
		AuthorID: c.AuthorID, Body: v.body,
		Score: c.Score, Ups: c.Ups, Downs: c.Downs, Gilded: c.Gilded,
		ApprovalState: c.ApprovalState, AutomodFiltered: c.AutomodFiltered, Stickied: c.Stickied,
		Distinguished: c.Distinguished, Edited: v.edited, CreatedUTC: v.createdUTC,
	}
	if c.RichText != nil {
		out.RichText = convertAll(c.RichText, func(r ScenarioRichText) RichTextUntagged { return RichTextUntagged(r) })
	}
	if c.Media != nil {
		out.Media = convertAll(c.Media, func(m ScenarioMedia) MediaUntagged { return MediaUntagged(m) })
	}
	if !v.nilAwards {
		out.Awards = convertAll(c.Awards, func(a ScenarioAward) AwardUntagged { return AwardUntagged(a) })
	}
	return out
}

// EncodeMsgpack encodes a comment the way the sister service does.
//
// Encoder settings, deliberately:
//   - SetSortMapKeys(true): Go maps (none in the shapes today) get a stable key
//     order, so test vectors are deterministic. Structs always encode in field order.
//   - UseCompactInts(true): ints take the smallest msgpack int encoding, exactly as
//     Python's msgpack.packb does. The legacy consumer decodes every int width to a
//     Python int, so this is not needed for correctness; it makes the default payload
//     byte-identical to the Python legacy writer's, which the tests check.
//   - UseCompactFloats stays off: it would turn integral floats (created_utc
//     1700000000.0) into ints, a type difference.
//   - SetOmitEmpty(true) only for -untagged combined with -omitempty (an untagged
//     struct has no tags to carry `omitempty`).
func EncodeMsgpack(c *ScenarioComment, s Switches) ([]byte, error) {
	return encodeMsgpack(BuildMsgpackValue(c, s), s.Untagged && s.OmitEmpty)
}

func encodeMsgpack(value any, omitEmpty bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true)
	enc.SetOmitEmpty(omitEmpty)
	if err := enc.Encode(value); err != nil {
		return nil, fmt.Errorf("msgpack: %w", err)
	}
	return buf.Bytes(), nil
}

// BuildProto builds the protobuf message for a comment (schemas/comment.proto):
// rich_text/media wrappers unset for nil and set (even when empty) for a list,
// distinguished unset for nil, edited unset for false.
func BuildProto(c *ScenarioComment) *commentpb.Comment {
	msg := &commentpb.Comment{
		Id:              c.ID,
		LinkId:          c.LinkID,
		ParentId:        c.ParentID,
		SubredditId:     c.SubredditID,
		AuthorId:        c.AuthorID,
		Body:            c.Body,
		Score:           c.Score,
		Ups:             c.Ups,
		Downs:           c.Downs,
		Gilded:          c.Gilded,
		ApprovalState:   c.ApprovalState,
		AutomodFiltered: c.AutomodFiltered,
		Stickied:        c.Stickied,
		CreatedUtc:      c.CreatedUTC,
	}
	if c.RichText != nil {
		msg.RichText = &commentpb.RichTextList{Items: make([]*commentpb.RichText, 0, len(c.RichText))}
		for _, r := range c.RichText {
			item := &commentpb.RichText{E: r.E, T: r.T}
			if r.U != nil {
				item.U = proto.String(*r.U)
			}
			msg.RichText.Items = append(msg.RichText.Items, item)
		}
	}
	if c.Media != nil {
		msg.Media = &commentpb.MediaList{Items: make([]*commentpb.Media, 0, len(c.Media))}
		for _, m := range c.Media {
			msg.Media.Items = append(msg.Media.Items, &commentpb.Media{
				Type: m.Type, Url: m.URL, Width: m.Width, Height: m.Height, ContentType: m.ContentType,
			})
		}
	}
	for _, a := range c.Awards {
		msg.Awards = append(msg.Awards, &commentpb.Award{AwardId: a.AwardID, Count: a.Count})
	}
	if c.Distinguished != nil {
		msg.Distinguished = proto.String(*c.Distinguished)
	}
	if c.Edited != nil {
		msg.Edited = proto.Float64(*c.Edited)
	}
	return msg
}

var protoOptions = proto.MarshalOptions{Deterministic: true}

// EncodeProtobuf encodes a comment as a cdcverify.v1.Comment.
func EncodeProtobuf(c *ScenarioComment) ([]byte, error) {
	out, err := protoOptions.Marshal(BuildProto(c))
	if err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	return out, nil
}

// Encoding names the payload encoding of a stream entry.
type Encoding string

const (
	EncodingMsgpack  Encoding = "msgpack"
	EncodingProtobuf Encoding = "protobuf"
)

// EncodePayload encodes a comment in the given encoding; switches apply to msgpack only.
func EncodePayload(c *ScenarioComment, enc Encoding, s Switches) ([]byte, error) {
	switch enc {
	case EncodingMsgpack:
		return EncodeMsgpack(c, s)
	case EncodingProtobuf:
		if s.Any() {
			return nil, fmt.Errorf("divergence switches apply to -encoding msgpack only")
		}
		return EncodeProtobuf(c)
	default:
		return nil, fmt.Errorf("unknown encoding %q", enc)
	}
}
