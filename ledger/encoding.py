"""Canonical encoding: deterministic msgpack for every signed, hashed or transmitted record.

A record is a frozen dataclass that subclasses `Record`; its fields carry their bounds in
`Annotated` types (`U64`, `Bytes32`, `Annotated[bytes, MaxLen(4096)]`, `Annotated[tuple[Vote, ...],
MaxItems(256)]`...). The wire form is a msgpack array of the field values in declaration order (no
field names on the wire: fixed order is the schema). Maps appear only for `dict` fields and are
written with sorted keys.

Decoding is strict and total: the only exception `Record.decode` raises on any input is
`DecodeError`. It rejects trailing bytes, a wrong field count (missing or unknown fields), wrong
types (a float, a bool where an int belongs, str vs bytes), values out of bounds, duplicate or
unsorted map keys, extension types, and every non-canonical form: after decoding, the record is
encoded again and must give back exactly the input bytes. So one value has one encoding, and a
hash or signature over the encoding is a hash or signature over the value.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Self

import msgpack

from ledger.domains import Domain, digest
from ledger.errors import DecodeError, EncodeError

# Hard ceilings for any single decode, whatever the record type: one message, one string, one
# container. Record classes set tighter MAX_BYTES; these stop a hostile header from making msgpack
# allocate before the schema check runs.
DECODE_BYTES_MAX = 64 * 1024 * 1024  # a sync batch of blocks is the largest legitimate payload
_CONTAINER_ITEMS_MAX = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class UInt:
    """An unsigned integer of `bits` bits."""

    bits: int


@dataclasses.dataclass(frozen=True, slots=True)
class Len:
    """A bytes or str value of exactly `n` bytes/characters."""

    n: int


@dataclasses.dataclass(frozen=True, slots=True)
class MaxLen:
    """A bytes or str value of at most `n` bytes (str: UTF-8 bytes)."""

    n: int


@dataclasses.dataclass(frozen=True, slots=True)
class MaxItems:
    """A tuple or dict of at most `n` items."""

    n: int


U8 = Annotated[int, UInt(8)]
U16 = Annotated[int, UInt(16)]
U32 = Annotated[int, UInt(32)]
U64 = Annotated[int, UInt(64)]
Bytes32 = Annotated[bytes, Len(32)]
Bytes64 = Annotated[bytes, Len(64)]
Hash = Bytes32
PublicKeyBytes = Bytes32  # Ed25519 identity key or ECVRF public key
SignatureBytes = Bytes64  # Ed25519 signature

_Encoder = Callable[[Any, str], Any]
_Decoder = Callable[[Any, str], Any]


def _fail(path: str, what: str) -> DecodeError:
    return DecodeError(f"{path}: {what}")


def _compile(tp: Any, owner: str) -> tuple[_Encoder, _Decoder]:
    """Build (to_wire, from_wire) functions for one annotated type."""
    meta: list[object] = []
    if typing.get_origin(tp) is Annotated:
        tp, *meta = typing.get_args(tp)
    origin = typing.get_origin(tp)

    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(tp)) != 2:
            raise TypeError(f"{owner}: only `X | None` unions are supported, not {tp}")
        inner = args[0] if not meta else Annotated[(args[0], *meta)]
        enc_i, dec_i = _compile(inner, owner)

        def enc_opt(v: Any, path: str) -> Any:
            return None if v is None else enc_i(v, path)

        def dec_opt(v: Any, path: str) -> Any:
            return None if v is None else dec_i(v, path)

        return enc_opt, dec_opt

    if tp is bool:

        def enc_bool(v: Any, path: str) -> Any:
            if type(v) is not bool:
                raise EncodeError(f"{path}: expected bool, got {type(v).__name__}")
            return v

        def dec_bool(v: Any, path: str) -> Any:
            if type(v) is not bool:
                raise _fail(path, f"expected bool, got {type(v).__name__}")
            return v

        return enc_bool, dec_bool

    if isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        enum_tp = tp

        def enc_enum(v: Any, path: str) -> Any:
            if not isinstance(v, enum_tp):
                raise EncodeError(f"{path}: expected {enum_tp.__name__}, got {v!r}")
            return int(v)

        def dec_enum(v: Any, path: str) -> Any:
            if type(v) is not int:
                raise _fail(path, f"expected {enum_tp.__name__} (int), got {type(v).__name__}")
            try:
                return enum_tp(v)
            except ValueError:
                raise _fail(path, f"{v} is not a valid {enum_tp.__name__}") from None

        return enc_enum, dec_enum

    if tp is int:
        uint = next((m for m in meta if isinstance(m, UInt)), None)
        if uint is None:
            raise TypeError(f"{owner}: int fields need a width, e.g. U64")
        hi = (1 << uint.bits) - 1

        def enc_int(v: Any, path: str) -> Any:
            if type(v) is not int or not 0 <= v <= hi:
                raise EncodeError(f"{path}: expected an int in [0, 2^{uint.bits}), got {v!r}")
            return v

        def dec_int(v: Any, path: str) -> Any:
            if type(v) is not int:
                raise _fail(path, f"expected an int, got {type(v).__name__}")
            if not 0 <= v <= hi:
                raise _fail(path, f"{v} is outside [0, 2^{uint.bits})")
            return v

        return enc_int, dec_int

    if tp in (bytes, str):
        exact = next((m.n for m in meta if isinstance(m, Len)), None)
        most = next((m.n for m in meta if isinstance(m, MaxLen)), exact)
        if most is None:
            raise TypeError(f"{owner}: {tp.__name__} fields need Len(n) or MaxLen(n)")
        kind = tp

        def check(v: Any, path: str, err: Callable[[str, str], Exception]) -> None:
            if type(v) is not kind:
                raise err(path, f"expected {kind.__name__}, got {type(v).__name__}")
            n = len(v.encode()) if kind is str else len(v)
            if exact is not None and n != exact:
                raise err(path, f"expected exactly {exact} bytes, got {n}")
            if n > most:
                raise err(path, f"{n} bytes exceeds the maximum of {most}")

        def enc_b(v: Any, path: str) -> Any:
            check(v, path, lambda p, w: EncodeError(f"{p}: {w}"))
            return v

        def dec_b(v: Any, path: str) -> Any:
            check(v, path, _fail)
            return v

        return enc_b, dec_b

    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{owner}: tuples must be tuple[X, ...], not {tp}")
        cap = next((m.n for m in meta if isinstance(m, MaxItems)), None)
        if cap is None:
            raise TypeError(f"{owner}: tuple fields need MaxItems(n)")
        enc_i, dec_i = _compile(args[0], owner)

        def enc_tuple(v: Any, path: str) -> Any:
            if not isinstance(v, tuple) or len(v) > cap:
                raise EncodeError(f"{path}: expected a tuple of at most {cap} items")
            return [enc_i(x, f"{path}[{i}]") for i, x in enumerate(v)]

        def dec_tuple(v: Any, path: str) -> Any:
            if type(v) is not tuple:
                raise _fail(path, f"expected an array, got {type(v).__name__}")
            if len(v) > cap:
                raise _fail(path, f"{len(v)} items exceeds the maximum of {cap}")
            return tuple(dec_i(x, f"{path}[{i}]") for i, x in enumerate(v))

        return enc_tuple, dec_tuple

    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        cap = next((m.n for m in meta if isinstance(m, MaxItems)), None)
        if cap is None:
            raise TypeError(f"{owner}: dict fields need MaxItems(n)")
        enc_k, dec_k = _compile(k_tp, owner)
        enc_v, dec_v = _compile(v_tp, owner)

        def enc_dict(v: Any, path: str) -> Any:
            if not isinstance(v, dict) or len(v) > cap:
                raise EncodeError(f"{path}: expected a dict of at most {cap} items")
            pairs = [(enc_k(k, f"{path}.key"), enc_v(x, f"{path}[{k!r}]")) for k, x in v.items()]
            return _SortedMap(sorted(pairs, key=lambda kv: kv[0]))

        def dec_dict(v: Any, path: str) -> Any:
            if not isinstance(v, _DecodedMap):
                raise _fail(path, f"expected a map, got {type(v).__name__}")
            if len(v.pairs) > cap:
                raise _fail(path, f"{len(v.pairs)} items exceeds the maximum of {cap}")
            out = {}
            for k, x in v.pairs:
                key = dec_k(k, f"{path}.key")
                out[key] = dec_v(x, f"{path}[{key!r}]")
            return out

        return enc_dict, dec_dict

    if isinstance(tp, type) and issubclass(tp, Record):
        rec_tp = tp

        def enc_rec(v: Any, path: str) -> Any:
            if type(v) is not rec_tp:
                raise EncodeError(f"{path}: expected {rec_tp.__name__}, got {type(v).__name__}")
            return v._to_wire(path)

        def dec_rec(v: Any, path: str) -> Any:
            return rec_tp._from_wire(v, path)

        return enc_rec, dec_rec

    raise TypeError(f"{owner}: unsupported field type {tp!r}")


class _SortedMap(dict):  # type: ignore[type-arg]
    """A dict built from pairs in canonical (sorted) order; msgpack keeps insertion order."""

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        super().__init__(pairs)
        if len(self) != len(pairs):
            raise EncodeError("two keys of a map encode to the same value")


@dataclasses.dataclass(frozen=True, slots=True)
class _DecodedMap:
    pairs: tuple[tuple[Any, Any], ...]


def _map_hook(pairs: list[tuple[Any, Any]]) -> _DecodedMap:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate map key")
    if keys != sorted(keys):
        raise ValueError("map keys are not in canonical (sorted) order")
    return _DecodedMap(tuple(pairs))


def unpack_strict(data: bytes, max_bytes: int = DECODE_BYTES_MAX) -> Any:
    """Decode one msgpack value with the strict rules above (no schema). Raises DecodeError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(f"{len(data)} bytes exceeds the maximum of {max_bytes}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=False,
            object_pairs_hook=_map_hook,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=_CONTAINER_ITEMS_MAX,
            max_map_len=_CONTAINER_ITEMS_MAX,
            max_ext_len=0,
        )
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        # ExtraData (trailing bytes), FormatError, StackError, invalid UTF-8 and our hook's
        # ValueErrors all land here.
        raise DecodeError(f"not canonical msgpack: {exc}") from None


class Record:
    """Base class of every encodable record; subclasses are frozen dataclasses.

    `MAX_BYTES` bounds the encoded size of a top-level record of that class (a subclass sets it to
    what its largest legitimate value needs).
    """

    MAX_BYTES: ClassVar[int] = 1024 * 1024
    _codec: ClassVar[tuple[tuple[str, _Encoder, _Decoder], ...] | None] = None

    @classmethod
    def _fields_codec(cls) -> tuple[tuple[str, _Encoder, _Decoder], ...]:
        codec = cls.__dict__.get("_codec")
        if codec is None:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__name__} must be a dataclass to be a Record")
            shadowing = [f.name for f in dataclasses.fields(cls) if hasattr(Record, f.name)]
            if shadowing:
                # A field named like a Record method (`digest`, `encode`...) silently takes the
                # method as its dataclass default; refuse the class instead.
                raise TypeError(f"{cls.__name__}: field(s) {shadowing} shadow Record methods")
            hints = typing.get_type_hints(cls, include_extras=True)
            codec = tuple(
                (f.name, *_compile(hints[f.name], f"{cls.__name__}.{f.name}"))
                for f in dataclasses.fields(cls)
            )
            cls._codec = codec
        return codec

    def _to_wire(self, path: str) -> list[Any]:
        return [enc(getattr(self, name), f"{path}.{name}") for name, enc, _ in self._fields_codec()]

    @classmethod
    def _from_wire(cls, v: Any, path: str) -> Self:
        codec = cls._fields_codec()
        if type(v) is not tuple:
            raise _fail(path, f"expected an array for {cls.__name__}, got {type(v).__name__}")
        if len(v) != len(codec):
            raise _fail(
                path,
                f"{cls.__name__} has {len(codec)} fields, got {len(v)} "
                f"({'unknown fields' if len(v) > len(codec) else 'missing fields'})",
            )
        values = {
            name: dec(x, f"{path}.{name}") for (name, _, dec), x in zip(codec, v, strict=True)
        }
        try:
            return cls(**values)
        except (ValueError, TypeError) as exc:  # a __post_init__ invariant of the record
            raise _fail(path, str(exc)) from None

    def encode(self) -> bytes:
        """The canonical bytes of this record. Raises EncodeError if a field is out of bounds."""
        data = msgpack.packb(self._to_wire(type(self).__name__), use_bin_type=True)
        if len(data) > self.MAX_BYTES:
            raise EncodeError(
                f"{type(self).__name__} encodes to {len(data)} bytes, "
                f"above MAX_BYTES={self.MAX_BYTES}"
            )
        return data

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode canonical bytes into a record. Raises DecodeError on anything else; if the bytes
        came from a peer, drop them and penalise the sender."""
        if isinstance(data, bytes | bytearray) and len(data) > cls.MAX_BYTES:
            raise DecodeError(
                f"{cls.__name__}: {len(data)} bytes exceeds the maximum of {cls.MAX_BYTES}"
            )
        value = unpack_strict(bytes(data), cls.MAX_BYTES)
        record = cls._from_wire(value, cls.__name__)
        try:
            canonical = record.encode()
        except EncodeError as exc:  # e.g. a __post_init__-free invariant only encode checks
            raise DecodeError(str(exc)) from None
        if canonical != data:
            raise DecodeError(f"{cls.__name__}: non-canonical encoding")
        return record

    def digest(self, domain: Domain) -> bytes:
        """BLAKE3-256 of `domain || self.encode()`."""
        return digest(domain, self.encode())
