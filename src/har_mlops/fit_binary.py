"""The FIT binary layer: file headers, record walking and the CRC, vectorised with numpy.

A FIT file is a header, a sequence of records and a CRC-16 (Garmin's FIT protocol document,
"File Structure"). Definition records fix, per local message type, the global message number,
the byte order and the fields (number, size, base type) of the data records that follow;
a data record is a header byte plus the fixed-size payload of its definition. A
compressed-timestamp header packs the local type and a 5-bit time offset into the header byte.

Decoding each field of each record in Python (as a general decoder does) costs about 0.2 ms a
record. Here only the record headers are walked in Python; the records of each definition are
then cut out of the buffer at once and read as a numpy structured array, so a day of IMU data
decodes in seconds (``benchmarks/fit_decode.py``). The CRC is computed over blocks of the
file in parallel and the block CRCs combined, which is exact because CRC-16 is linear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIT_SIGNATURE = b".FIT"

# Base type number (low 5 bits of the base type byte) -> numpy type code and invalid value.
# float32/float64 invalids are all-ones bit patterns, i.e. NaN already.
BASE_TYPES: dict[int, tuple[str, int | None]] = {
    0x00: ("u1", 0xFF),  # enum
    0x01: ("i1", 0x7F),  # sint8
    0x02: ("u1", 0xFF),  # uint8
    0x03: ("i2", 0x7FFF),  # sint16
    0x04: ("u2", 0xFFFF),  # uint16
    0x05: ("i4", 0x7FFFFFFF),  # sint32
    0x06: ("u4", 0xFFFFFFFF),  # uint32
    0x08: ("f4", None),  # float32
    0x09: ("f8", None),  # float64
    0x0A: ("u1", 0x00),  # uint8z
    0x0B: ("u2", 0x0000),  # uint16z
    0x0C: ("u4", 0x00000000),  # uint32z
    0x0D: ("u1", 0xFF),  # byte
    0x0E: ("i8", 0x7FFFFFFFFFFFFFFF),  # sint64
    0x0F: ("u8", 0xFFFFFFFFFFFFFFFF),  # uint64
    0x10: ("u8", 0x0000000000000000),  # uint64z
}
FIELD_TIMESTAMP = 253


class FitFormatError(ValueError):
    """The bytes are not a FIT file, or a record is malformed."""


class FitCrcError(FitFormatError):
    """A stored CRC differs from the one computed over the bytes."""


class FitTruncatedError(FitFormatError):
    """The file ends before the size its header announces."""


@dataclass
class FieldLayout:
    offset: int  # byte offset in the record payload
    code: str  # numpy type code with byte order, e.g. "<u2"
    count: int  # array length (1 for a scalar)
    invalid: int | None


@dataclass
class Definition:
    """A definition record: what the data records of one local message type hold."""

    global_num: int
    size: int  # payload bytes of a data record (header byte excluded)
    fields: dict[int, FieldLayout] = field(default_factory=dict)

    def values(self, payloads: np.ndarray, number: int) -> np.ndarray | None:
        """Field ``number`` of the records ``payloads [n, size]`` (uint8) as float64
        ``[n, count]``, invalid values as NaN; None when the definition has no such field."""
        layout = self.fields.get(number)
        if layout is None:
            return None
        width = np.dtype(layout.code).itemsize * layout.count
        raw = np.ascontiguousarray(payloads[:, layout.offset : layout.offset + width])
        typed = raw.view(layout.code).reshape(len(payloads), layout.count)
        values = typed.astype(np.float64)
        if layout.invalid is not None:
            values[typed == layout.invalid] = np.nan
        return values


@dataclass
class FileHeader:
    size: int  # 12 or 14
    data_size: int  # bytes of records after the header
    crc: int | None  # header CRC when present and non-zero


def parse_header(data: bytes) -> FileHeader:
    """The file header at the start of ``data``; raises when it is not a FIT header."""
    if len(data) < 1:
        raise FitTruncatedError("the file is empty")
    size = data[0]
    if size not in (12, 14):
        raise FitFormatError(f"invalid header size {size} (a FIT header has 12 or 14 bytes)")
    if len(data) < size:
        raise FitTruncatedError(f"truncated header: {len(data)} of {size} bytes")
    if data[8:12] != FIT_SIGNATURE:
        raise FitFormatError(f"not a FIT file: signature {bytes(data[8:12])!r}, not '.FIT'")
    crc = int.from_bytes(data[12:14], "little") if size == 14 else 0
    return FileHeader(size, int.from_bytes(data[4:8], "little"), crc or None)


def _definition(data: bytes, pos: int, end: int, header: int) -> tuple[Definition, int] | None:
    """The definition record whose payload starts at ``pos``; None if not all in ``data``."""
    if pos + 5 > end:
        return None
    endian = ">" if data[pos + 1] else "<"
    global_num = int.from_bytes(data[pos + 2 : pos + 4], "big" if endian == ">" else "little")
    n_fields = data[pos + 4]
    fields_end = pos + 5 + 3 * n_fields
    n_dev = 0
    if header & 0x20:
        if fields_end + 1 > end:
            return None
        n_dev = data[fields_end]
        fields_end += 1 + 3 * n_dev
    if fields_end > end:
        return None
    definition = Definition(global_num=global_num, size=0)
    offset = 0
    for k in range(n_fields):
        number, size, base = data[pos + 5 + 3 * k : pos + 8 + 3 * k]
        code, invalid = BASE_TYPES.get(base & 0x1F, (None, None))
        if code is not None and number not in definition.fields:
            itemsize = np.dtype(code).itemsize
            if size and size % itemsize == 0:
                definition.fields[number] = FieldLayout(
                    offset, endian + code, size // itemsize, invalid
                )
        offset += size
    dev_start = pos + 5 + 3 * n_fields + 1
    for k in range(n_dev):
        offset += data[dev_start + 3 * k + 1]  # developer fields are skipped, not read
    definition.size = offset
    return definition, fields_end


@dataclass
class RecordBatch:
    """The data records walked in one buffer, in file order."""

    positions: list[int] = field(default_factory=list)  # payload start in the buffer
    definitions: list[int] = field(default_factory=list)  # index into Walker.definitions
    compressed_times: dict[int, int] = field(default_factory=dict)  # record index -> time


class Walker:
    """Walks the records of one FIT file's data section, buffer after buffer.

    Keeps the local definitions and the last timestamp (for compressed-timestamp headers)
    across buffers; ``walk`` stops at the last complete record of a buffer.
    """

    def __init__(self) -> None:
        self.definitions: list[Definition] = []
        self._local: dict[int, int] = {}
        self._last_time: int | None = None

    def _compressed_time(self, header: int, pos: int) -> int:
        """The time of a compressed-timestamp record: the last time with its low 5 bits set
        to the header's offset, one 32 s period on when the offset rolled over."""
        if self._last_time is None:
            raise FitFormatError(f"record at byte {pos}: compressed timestamp before any timestamp")
        offset = header & 0x1F
        time = (self._last_time & ~0x1F) + offset
        if offset < (self._last_time & 0x1F):
            time += 0x20
        self._last_time = time
        return time

    def walk(self, data: bytes, pos: int, end: int) -> tuple[RecordBatch, int]:
        """Records from ``pos`` up to ``end`` (exclusive); returns them and where it stopped."""
        batch = RecordBatch()
        positions, definitions = batch.positions, batch.definitions
        local = self._local
        defs = self.definitions
        while pos < end:
            header = data[pos]
            if header & 0x80:  # compressed timestamp header: a data record
                number = (header >> 5) & 0x03
                index = local.get(number)
                if index is None:
                    raise FitFormatError(f"record at byte {pos}: local message {number} undefined")
                if pos + 1 + defs[index].size > end:
                    break
                time = self._compressed_time(header, pos)
                batch.compressed_times[len(positions)] = time
                positions.append(pos + 1)
                definitions.append(index)
                pos += 1 + defs[index].size
            elif header & 0x40:  # definition
                parsed = _definition(data, pos + 1, end, header)
                if parsed is None:
                    break
                definition, pos = parsed
                local[header & 0x0F] = len(defs)
                defs.append(definition)
            else:
                number = header & 0x0F
                index = local.get(number)
                if index is None:
                    raise FitFormatError(f"record at byte {pos}: local message {number} undefined")
                definition = defs[index]
                if pos + 1 + definition.size > end:
                    break
                stamp = definition.fields.get(FIELD_TIMESTAMP)
                if stamp is not None:
                    start = pos + 1 + stamp.offset
                    value = int.from_bytes(
                        data[start : start + 4], "big" if stamp.code[0] == ">" else "little"
                    )
                    if value != 0xFFFFFFFF:
                        self._last_time = value
                positions.append(pos + 1)
                definitions.append(index)
                pos += 1 + definition.size
        return batch, pos


# --------------------------------------------------------------------------- CRC-16


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table[byte] = crc
    return table


CRC_TABLE = _crc_table()
_TABLE = [int(v) for v in CRC_TABLE]
CRC_BLOCK = 1024


def _crc_scalar(crc: int, data: bytes) -> int:
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _zeros_shift(length: int) -> tuple[list[int], list[int]]:
    """Tables advancing a CRC through ``length`` zero bytes (a linear map): by low and high
    byte of the CRC."""
    basis = [_crc_scalar(1 << bit, bytes(length)) for bit in range(16)]

    def combine(value: int, bits: range) -> int:
        out = 0
        for k, bit in enumerate(bits):
            if value >> k & 1:
                out ^= basis[bit]
        return out

    low = [combine(v, range(0, 8)) for v in range(256)]
    high = [combine(v, range(8, 16)) for v in range(256)]
    return low, high


_SHIFT_LOW, _SHIFT_HIGH = _zeros_shift(CRC_BLOCK)


def crc16(data: bytes, crc: int = 0) -> int:
    """FIT's CRC-16 of ``data`` continuing from ``crc``.

    Whole blocks of ``CRC_BLOCK`` bytes are run side by side (one numpy step per byte
    position), each from 0; the running CRC is advanced over each block through zeros and
    combined with the block's CRC: crc(c, A) = crc(c, zeros) ^ crc(0, A).
    """
    blocks = len(data) // CRC_BLOCK
    if blocks < 4:
        return _crc_scalar(crc, data)
    matrix = np.frombuffer(data, dtype=np.uint8, count=blocks * CRC_BLOCK).reshape(
        blocks, CRC_BLOCK
    )
    state = np.zeros(blocks, dtype=np.uint16)
    columns = np.ascontiguousarray(matrix.T)
    for column in columns:
        state = (state >> 8) ^ CRC_TABLE[(state ^ column) & 0xFF]
    low, high = _SHIFT_LOW, _SHIFT_HIGH
    for block_crc in state.tolist():
        crc = low[crc & 0xFF] ^ high[crc >> 8] ^ block_crc
    return _crc_scalar(crc, data[blocks * CRC_BLOCK :])
