"""A FUSE file system whose files are opened but never flushed or read: the hostile user's tool.

    python stuckfs.py MOUNTPOINT      (as root: mounts through /dev/fuse; prints "mounted" when it serves)

A process that opens MOUNTPOINT/f close-on-exec and then execs stays in the
exec for as long as this runs, holding the lock that reading its
/proc/PID/stat and environ takes: the reader blocks with it. MOUNTPOINT/x is
executable: a process that execs it stays in that exec. Looking up
MOUNTPOINT/hang never ends.
"""
import ctypes
import os
import struct
import sys

MS_NOSUID, MS_NODEV = 2, 4
SIZE = 1 << 20
FILES = {b"f": 2, b"x": 3}
MODES = {1: 0o040755, 2: 0o100644, 3: 0o100755}


def attr(ino, mode, size):
    return struct.pack("<QQQQQQIIIIIIIIII", ino, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0, mode, 1, 0, 0, 0,
                       4096, 0)


def main(mountpoint):
    fd = os.open("/dev/fuse", os.O_RDWR)
    opts = "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % fd
    if ctypes.CDLL(None, use_errno=True).mount(b"stuck", mountpoint.encode(), b"fuse.stuck", MS_NOSUID | MS_NODEV,
                                               opts.encode()) != 0:
        sys.exit("mount: %s" % os.strerror(ctypes.get_errno()))

    def reply(unique, payload=b"", error=0):
        os.write(fd, struct.pack("<IiQ", 16 + len(payload), error, unique) + payload)

    print("mounted", flush=True)
    while True:
        try:
            data = os.read(fd, 1 << 21)
        except OSError:
            return
        length, opcode, unique, nodeid = struct.unpack("<IIQQ", data[:24])
        body = data[40:length]
        if opcode == 26:  # INIT
            _major, _minor, max_ra, _flags = struct.unpack("<IIII", body[:16])
            reply(unique, struct.pack("<IIIIHHIIHHII", 7, 31, max_ra, 0, 16, 12, 65536, 1, 32, 0, 0, 0) + b"\0" * 24)
        elif opcode == 1:  # LOOKUP
            name = body.split(b"\0")[0]
            if name == b"hang":
                continue  # a lookup never answered: whatever looks at MOUNTPOINT/hang waits
            if name in FILES:
                ino = FILES[name]
                reply(unique, struct.pack("<QQQQII", ino, 0, 3600, 3600, 0, 0) + attr(ino, MODES[ino], SIZE))
            else:
                reply(unique, error=-2)
        elif opcode == 3:  # GETATTR
            reply(unique, struct.pack("<QII", 3600, 0, 0) + attr(nodeid, MODES[nodeid], 0 if nodeid == 1 else SIZE))
        elif opcode in (14, 27):  # OPEN, OPENDIR
            reply(unique, struct.pack("<QII", 1, 0, 0))
        elif opcode in (15, 25, 36):  # READ, FLUSH, INTERRUPT: never answered
            continue
        elif opcode in (18, 29):  # RELEASE, RELEASEDIR
            reply(unique)
        else:
            reply(unique, error=-38)  # ENOSYS


if __name__ == "__main__":
    main(sys.argv[1])
