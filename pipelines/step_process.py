"""Run one pipeline step in this process: `python -m pipelines.step_process STEP_DIR` (the local runner's way).

Reads STEP_DIR/call.json (node name, resolved arguments, offline or not), opens the step's ClearML task, runs the step
through the executor every runner uses, and writes STEP_DIR/result.json. Exit status: 0 done, 2 a problem the user
can fix (the message is printed), 1 anything else (the traceback is in the step's log).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def main(step_dir: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from brain_tumor.errors import UserError
    from pipelines.executor import execute
    from steps.tracking import open_task

    call = json.loads(Path(step_dir, "call.json").read_text())
    scalars = {k: v for k, v in call["kwargs"].items() if isinstance(v, (str, int, float, bool))}
    task = open_task(call["name"], scalars, offline=call["offline"], output_uri=call.get("output_uri") or None)
    start = time.perf_counter()
    try:
        result = execute(call["name"], call["kwargs"])
        seconds = time.perf_counter() - start
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        task.close()
    Path(step_dir, "result.json").write_text(json.dumps({"result": result, "seconds": seconds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
