"""Walking the top-level boxes of an MP4 (ISO-BMFF) file, for code that must judge or cut
a file by its framing without demuxing it: the ingest probe (is the file whole?) and the
recorder's crash salvage (where does the last complete fragment end?).

A box starts with a 32-bit big-endian size (header included) and a 4-byte type. Size 1
means a 64-bit size follows the type (a 16-byte header); size 0 means the box extends to
the end of the file. ``walk`` yields one ``Box`` per top-level box and stops after the
first one that is not whole (``Box.fault`` says why) — what to make of that is the
caller's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

__all__ = ["Box", "Fault", "walk"]

# "header": the file ends inside the box's header (fewer than 8 bytes, or 16 for a 64-bit
# size); "size": the declared size is smaller than the header itself; "end": the box runs
# past the end of the file.
Fault = Literal["", "header", "size", "end"]


@dataclass(frozen=True, slots=True)
class Box:
    """One top-level box: its type, where it starts and how long it is (header included).

    ``kind`` is shorter than 4 bytes only when the file ends inside it (``fault ==
    "header"``; ``size`` is then 0). A size field of 0 is resolved to "up to the end".
    """

    kind: bytes
    offset: int
    size: int
    header: int = 8
    fault: Fault = ""

    @property
    def end(self) -> int:
        """Offset just after the box (the next box's offset when it is whole)."""
        return self.offset + self.size


def walk(f: BinaryIO, size: int) -> Iterator[Box]:
    """The top-level boxes of ``f`` (``size`` bytes long), in file order, from offset 0.
    Stops at the end of the file or after the first box with a ``fault``."""
    pos = 0
    while pos < size:
        f.seek(pos)
        hdr = f.read(16)
        kind = hdr[4:8]
        if len(hdr) < 8:
            yield Box(kind, pos, 0, fault="header")
            return
        box_size, header = int.from_bytes(hdr[:4], "big"), 8
        if box_size == 1:
            if len(hdr) < 16:
                yield Box(kind, pos, 0, 16, fault="header")
                return
            box_size, header = int.from_bytes(hdr[8:16], "big"), 16
        elif box_size == 0:
            box_size = size - pos
        if box_size < header:
            yield Box(kind, pos, box_size, header, fault="size")
            return
        if pos + box_size > size:
            yield Box(kind, pos, box_size, header, fault="end")
            return
        yield Box(kind, pos, box_size, header)
        pos += box_size
