# SPDX-License-Identifier: LGPL-2.1-or-later
"""gdb: name and unwind through hotpatched functions.

gdb has its own unwinder and does not know the anonymous mappings the
hotpatch engine puts replacement code in: `bt` stops at a patched frame
(`?? ()`). This command finds every patch region of the inferior (the
region header, docs/engine.md), takes each set's patch object out of the
store (a bare git repository) and loads it at the address of its image:

    (gdb) source /usr/share/hotpatch/gdb/hotpatch.py
    (gdb) hotpatch-symbols [STORE]

STORE defaults to $HP_STORE, else /var/lib/hotpatch/store.git. gdb then
names the patched functions and unwinds through them with their CFI.
"""

import os
import struct
import subprocess
import tempfile

import gdb

REGION_MAGIC = b"HPREGN01"
DEFAULT_STORE = "/var/lib/hotpatch/store.git"


def _regions(pid):
    """(address, text_start, set_id) of every patch region of pid."""
    inferior = gdb.selected_inferior()
    found = []
    with open("/proc/%d/maps" % pid) as maps:
        for line in maps:
            fields = line.split()
            # anonymous, read-only, private: where a region header lives
            if len(fields) != 5 or fields[1] != "r--p":
                continue
            start = int(fields[0].split("-")[0], 16)
            try:
                head = bytes(inferior.read_memory(start, 360))
            except gdb.MemoryError:
                continue
            if head[:8] != REGION_MAGIC:
                continue
            text_start = struct.unpack_from("<Q", head, 24)[0]
            set_id = head[200:360].split(b"\0", 1)[0].decode("ascii", "replace")
            found.append((start, text_start, set_id))
    return found


class HotpatchSymbols(gdb.Command):
    """Load the patch objects of the inferior's hotpatched sets: hotpatch-symbols [STORE]."""

    def __init__(self):
        super().__init__("hotpatch-symbols", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        store = arg.strip() or os.environ.get("HP_STORE") or DEFAULT_STORE
        pid = gdb.selected_inferior().pid
        if not pid:
            raise gdb.GdbError("hotpatch-symbols: no process")
        regions = _regions(pid)
        if not regions:
            print("hotpatch-symbols: process %d has no patch region" % pid)
            return
        tmp = tempfile.mkdtemp(prefix="hotpatch-gdb-")
        for addr, text_start, set_id in regions:
            path = os.path.join(tmp, set_id.replace("/", "_") + ".so")
            blob = subprocess.run(
                ["git", "--git-dir", store, "show", "HEAD:%s/patch.so" % set_id],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            if blob.returncode != 0:
                print("hotpatch-symbols: set %s: not in the store %s (%s)"
                      % (set_id, store, blob.stderr.decode(errors="replace").strip()))
                continue
            with open(path, "wb") as out:
                out.write(blob.stdout)
            gdb.execute("add-symbol-file %s -o %#x" % (path, text_start), to_string=True)
            print("hotpatch-symbols: %s at %#x (region %#x)" % (set_id, text_start, addr))


HotpatchSymbols()
