from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RichText(_message.Message):
    __slots__ = ("e", "t", "u")
    E_FIELD_NUMBER: _ClassVar[int]
    T_FIELD_NUMBER: _ClassVar[int]
    U_FIELD_NUMBER: _ClassVar[int]
    e: str
    t: str
    u: str
    def __init__(self, e: _Optional[str] = ..., t: _Optional[str] = ..., u: _Optional[str] = ...) -> None: ...

class RichTextList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RichText]
    def __init__(self, items: _Optional[_Iterable[_Union[RichText, _Mapping]]] = ...) -> None: ...

class Media(_message.Message):
    __slots__ = ("type", "url", "width", "height", "content_type")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    type: str
    url: str
    width: int
    height: int
    content_type: str
    def __init__(self, type: _Optional[str] = ..., url: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., content_type: _Optional[str] = ...) -> None: ...

class MediaList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Media]
    def __init__(self, items: _Optional[_Iterable[_Union[Media, _Mapping]]] = ...) -> None: ...

class Award(_message.Message):
    __slots__ = ("award_id", "count")
    AWARD_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    award_id: str
    count: int
    def __init__(self, award_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Comment(_message.Message):
    __slots__ = ("id", "link_id", "parent_id", "subreddit_id", "author_id", "body", "rich_text", "media", "score", "ups", "downs", "gilded", "awards", "approval_state", "automod_filtered", "stickied", "distinguished", "edited", "created_utc")
    ID_FIELD_NUMBER: _ClassVar[int]
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBREDDIT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    RICH_TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    UPS_FIELD_NUMBER: _ClassVar[int]
    DOWNS_FIELD_NUMBER: _ClassVar[int]
    GILDED_FIELD_NUMBER: _ClassVar[int]
    AWARDS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_STATE_FIELD_NUMBER: _ClassVar[int]
    AUTOMOD_FILTERED_FIELD_NUMBER: _ClassVar[int]
    STICKIED_FIELD_NUMBER: _ClassVar[int]
    DISTINGUISHED_FIELD_NUMBER: _ClassVar[int]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    CREATED_UTC_FIELD_NUMBER: _ClassVar[int]
    id: str
    link_id: str
    parent_id: str
    subreddit_id: str
    author_id: str
    body: str
    rich_text: RichTextList
    media: MediaList
    score: int
    ups: int
    downs: int
    gilded: int
    awards: _containers.RepeatedCompositeFieldContainer[Award]
    approval_state: str
    automod_filtered: bool
    stickied: bool
    distinguished: str
    edited: float
    created_utc: float
    def __init__(self, id: _Optional[str] = ..., link_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., subreddit_id: _Optional[str] = ..., author_id: _Optional[str] = ..., body: _Optional[str] = ..., rich_text: _Optional[_Union[RichTextList, _Mapping]] = ..., media: _Optional[_Union[MediaList, _Mapping]] = ..., score: _Optional[int] = ..., ups: _Optional[int] = ..., downs: _Optional[int] = ..., gilded: _Optional[int] = ..., awards: _Optional[_Iterable[_Union[Award, _Mapping]]] = ..., approval_state: _Optional[str] = ..., automod_filtered: _Optional[bool] = ..., stickied: _Optional[bool] = ..., distinguished: _Optional[str] = ..., edited: _Optional[float] = ..., created_utc: _Optional[float] = ...) -> None: ...
