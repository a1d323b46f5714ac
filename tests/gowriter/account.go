package main

import "fmt"

// Account is the msgpack wire shape of an account (docs/wire-format.md, "Accounts"):
// the documented keys as tags, declared in the documented order, so the payload is
// byte for byte what the Python legacy writer (msgpack.packb of the map) encodes.
// Accounts are msgpack only, and the divergence switches do not apply to them.
type Account struct {
	ID             string   `msgpack:"id"`
	Name           string   `msgpack:"name"`
	IconURL        *string  `msgpack:"icon_url"` // nil pointer: msgpack nil
	CreatedUTC     float64  `msgpack:"created_utc"`
	LinkKarma      int64    `msgpack:"link_karma"`
	CommentKarma   int64    `msgpack:"comment_karma"`
	IsSuspended    bool     `msgpack:"is_suspended"`
	SuspendedUntil *float64 `msgpack:"suspended_until"` // nil pointer: msgpack nil
	EmailVerified  bool     `msgpack:"email_verified"`
	HasPremium     bool     `msgpack:"has_premium"`
	Trophies       []Trophy `msgpack:"trophies"` // must be non-nil (empty array), nil is undecodable
}

// Trophy is one trophy of an account.
type Trophy struct {
	TrophyID   string  `msgpack:"trophy_id"`
	GrantedUTC float64 `msgpack:"granted_utc"`
}

// BuildAccount builds the Go value the service hands to msgpack for an account.
func BuildAccount(a *ScenarioAccount) *Account {
	return &Account{
		ID: a.ID, Name: a.Name, IconURL: a.IconURL, CreatedUTC: a.CreatedUTC,
		LinkKarma: a.LinkKarma, CommentKarma: a.CommentKarma, IsSuspended: a.IsSuspended,
		SuspendedUntil: a.SuspendedUntil, EmailVerified: a.EmailVerified, HasPremium: a.HasPremium,
		Trophies: convertAll(a.Trophies, func(t ScenarioTrophy) Trophy { return Trophy(t) }),
	}
}

// EncodeAccount encodes an account the way the sister service does (the encoder
// settings of EncodeMsgpack).
func EncodeAccount(a *ScenarioAccount) ([]byte, error) {
	return encodeMsgpack(BuildAccount(a), false)
}

// EncodeChange encodes a change's payload and names the encoding written. A comment
// is encoded in `enc` with the switches; an account is always msgpack in the correct
// shape (the legacy account consumer reads nothing else; switches are comment-only).
func EncodeChange(c *Change, enc Encoding, s Switches) ([]byte, Encoding, error) {
	switch c.Entity {
	case EntityAccount:
		payload, err := EncodeAccount(&c.Account)
		return payload, EncodingMsgpack, err
	case EntityComment:
		payload, err := EncodePayload(&c.Comment, enc, s)
		return payload, enc, err
	default:
		return nil, "", fmt.Errorf("unknown entity %q", c.Entity)
	}
}
