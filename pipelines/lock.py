"""One run per folder: a run holds RUN/.lock (its process id and host) while it writes there. A second run into the
same folder stops at once, naming the process that holds it; a lock left by a process that is gone is taken over
with a warning."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from brain_tumor.errors import UserError

LOCK = ".lock"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK

    def __enter__(self):
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder and (holder.get("host") != me["host"] or alive(int(holder["pid"]))):
                    raise UserError(f"{self.path.parent} is in use by another run: process {holder['pid']} on "
                                    f"{holder.get('host')} (started {holder.get('started')}). Wait for it, stop it, "
                                    f"or give another --out. If no such run exists, delete {self.path}.") from None
                print(f"warning: taking over {self.path}, left by process {holder.get('pid') if holder else '?'} "
                      f"that is no longer running", file=sys.stderr)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(me, handle)
            return self

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # half-written by a process killed while it wrote
            return None

    def __exit__(self, *exc):
        holder = self.holder()
        if holder and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        return False
