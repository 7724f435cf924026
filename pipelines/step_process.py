"""Run one pipeline step in this process: `python -m pipelines.step_process STEP_DIR` (the local runner's way).

Reads STEP_DIR/call.json (node name, resolved arguments, offline or not), opens the step's ClearML task, runs the step
through the executor every runner uses, and writes STEP_DIR/result.json. Exit status: 0 done, 2 a problem the user
can fix (the message is printed), 3 a full disk or an unwritable folder (likewise), 1 anything else (the traceback
is in the step's log).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)
WRITE_FAILED = 3  # exit status: the disk is full or the folder cannot be written


def main(step_dir: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from brain_tumor import files
    from brain_tumor.errors import UserError
    from pipelines.executor import execute
    from steps.tracking import open_task

    call = json.loads(Path(step_dir, "call.json").read_text())
    scalars = {k: v for k, v in call["kwargs"].items() if isinstance(v, (str, int, float, bool))}
    task = open_task(call["name"], scalars, offline=call["offline"], output_uri=call.get("output_uri") or None,
                     project=call["project"])
    start = time.perf_counter()
    try:
        result = execute(call["name"], call["kwargs"])
        seconds = time.perf_counter() - start
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            traceback.print_exc()
            return 1
        print(f"error: could not write {error.filename or 'in ' + str(call['kwargs'].get('run_dir', '.'))}: "
              f"{error.strerror}. Free space or fix the permissions there (or choose another --out); the finished "
              f"steps stay reusable.", file=sys.stderr)
        with contextlib.suppress(Exception):
            task.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(WRITE_FAILED)  # now: half-written files failing again as they are freed would only add noise
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        task.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB
    files.write_text(Path(step_dir, "result.json"),
                     json.dumps({"result": result, "seconds": seconds, "peak_mb": round(peak_mb, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
