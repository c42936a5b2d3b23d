"""Which files a job wrote into a folder, seen with Linux's inotify: the atomic writes' last step is a rename
into place, so the names moved in are the shards a resumed job computed (the others it reused)."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

IN_MOVED_TO = 0x80


class MovedInto:
    """Watches `directory` from now on; `names()` lists the files renamed into it, in order, and stops watching."""

    def __init__(self, directory: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, os.fsencode(directory), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def names(self) -> list[str]:
        names = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                if mask & IN_MOVED_TO:
                    names.append(data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode())
                offset += 16 + length
        os.close(self.fd)
        return names
