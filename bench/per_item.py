"""CPU per message of the recorder's core and per record of a Markdown export, in
process, this tree against the code at a git ref, alternating.

    .venv/bin/python bench/per_item.py [--baseline-ref REF] [--rounds 3] [--size 300]
                                       [--messages 200000] [--journal DIR]
    .venv/bin/python bench/per_item.py --instructions [--baseline-ref REF] [--size 300]

The full-speed and export benches (`record.py`, `costs.py`) run real processes on a
machine whose speed drifts by more than a change of a few percent; these two figures
are what such a change moves, measured without zmq, the publisher or the disk:

- core: `Recorder.record_batch` on batches of 256 messages of 300 B (`--size`; the
  payload of `record.py`), as the receiver hands them over in a flood (keyword rules and the
  secret scan paused, lines held until 1 MiB), main thread CPU per message;
- md export: `export_range` of the whole journal to Markdown in one process (no
  render cache) into a file (in the temp folder: the page cache, as an export
  writes it; /dev/null would leave the processor's caches to the export alone and
  hid a 10 % change), CPU per record; the journal defaults to the 100k one of
  `costs.py` (built once under /tmp/persist-costs).

`--instructions` counts instead of timing: the core's machine instructions a message
under valgrind (cachegrind, no cache simulation; 40k messages, one thread, a fixed
receive time and hash seed, the run without the loop subtracted). The count does not
drift with the machine, so a change of 2 % shows, where the timed runs vary by 10 %;
it does not weigh a cache miss or a slow instruction more than any other.

Each round runs both trees once, each in a fresh interpreter started in the tree
(its working folder and `PYTHONPATH`); the medians and their ratio are printed.
Before 2026-12-04 23:23 the runs were started in the caller's folder: from the
repository's root, the baseline's runs imported our code too, so every ratio printed
before then compared our code with itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import extract, run_in_tree  # noqa: E402

CORE = r"""
import json, os, sys, tempfile, time
from pathlib import Path
path = list(sys.path)
sys.path.insert(0, sys.argv[2])
from record import payload_template
sys.path[:] = path  # bench/record.py puts our tree first; the tree under test comes first
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
n, size = int(sys.argv[1]), int(sys.argv[3])
tmpl = payload_template("bench-1-abc", size, n)
messages = [[b"agents.bench", tmpl % (i, i)] for i in range(1, n + 1)]
rec = Recorder(RecorderOptions(log_dir=Path(tempfile.mkdtemp()) / "logs"))
rec.open()
rec.journal.sink.start()
batches = [messages[i : i + 256] for i in range(0, n, 256)]
t0 = time.thread_time()
for batch in batches:
    rec.record_batch(time.time(), batch, behind=True, more=len(batch) == 256)
rec.hand_over()
cpu = time.thread_time() - t0
import recorder
print(json.dumps({"code": recorder.__file__, "us": cpu / n * 1e6}))
os._exit(0)  # the journal and its threads are a temp folder's
"""

# The core for `--instructions`: no writer thread (the journal writes inline), a fixed
# receive time, no periodic snapshot; argv[3] "setup" stops before the loop.
CORE_COUNTED = r"""
import json, os, sys, tempfile
from pathlib import Path
path = list(sys.path)
sys.path.insert(0, sys.argv[2])
from record import payload_template
sys.path[:] = path
from recorder.daemon.core import Recorder
from recorder.daemon.options import RecorderOptions
n, size = int(sys.argv[1]), int(sys.argv[4])
tmpl = payload_template("bench-1-abc", size, n)
messages = [[b"agents.bench", tmpl % (i, i)] for i in range(1, n + 1)]
rec = Recorder(RecorderOptions(log_dir=Path(tempfile.mkdtemp()) / "logs"))
rec.open()
rec._take_snapshot = lambda: None
if sys.argv[3] == "loop":
    for i in range(0, n, 256):
        rec.record_batch(1_800_000_000.0, messages[i : i + 256], behind=True, more=True)
import recorder
print(json.dumps({"code": recorder.__file__}))
os._exit(0)
"""

EXPORT = r"""
import json, os, sys, time
from pathlib import Path
os.environ["PERSIST_RENDER_CACHE"] = "off"
from recorder.export.parallel import SERIAL
from recorder.export.writers import export_range
from recorder.store.ranges import JournalRange
from recorder.store.reader import open_store
store = open_store(Path(sys.argv[1]))
target = Path(sys.argv[2])
t0 = time.process_time()
with open(target, "wb") as out:  # a real file: its writes compete for the caches
    export_range(store, JournalRange(0, len(store)), "md", out, parallel=SERIAL)
import recorder
print(json.dumps({"code": recorder.__file__, "us": (time.process_time() - t0) / len(store) * 1e6}))
target.unlink()
"""


def run(tree: Path, code: str, *args: str) -> float:
    return float(run_in_tree(tree, code, *args)["us"])


def instructions(tree: Path, messages: int, size: int) -> float:
    """Machine instructions a message of the core in `tree` (see `--instructions`)."""
    counts = []
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
    valgrind.append("--cachegrind-out-file=/dev/null")
    for mode in ("loop", "setup"):
        argv = [sys.executable, "-c", CORE_COUNTED, str(messages), str(HERE), mode, str(size)]
        proc = subprocess.run(
            [*valgrind, *argv],
            env=dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0"),
            capture_output=True,
            text=True,
            check=True,
            cwd=tree,
        )
        code = json.loads(proc.stdout.strip().splitlines()[-1])["code"]
        if not Path(code).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"a run meant for {tree} imported {code}")
        refs = [line for line in proc.stderr.splitlines() if "I" in line and "refs:" in line]
        if not refs:
            raise SystemExit(f"valgrind printed no instruction count:\n{proc.stderr[-2000:]}")
        counts.append(int(refs[-1].split(":")[1].replace(",", "")))
    return (counts[0] - counts[1]) / messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline-ref", default="HEAD~1", help="git ref to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument(
        "--size", type=int, default=300, help="the core's payload bytes (default 300)"
    )
    parser.add_argument("--journal", type=Path, help="a journal folder (default: costs' 100k)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the core's instructions a message under valgrind instead of timing",
    )
    args = parser.parse_args()
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (apt install valgrind)")
        with tempfile.TemporaryDirectory() as tmp:
            base = extract(args.baseline_ref, Path(tmp), "recorder")
            ours = instructions(ROOT, 40_000, args.size)
            theirs = instructions(base, 40_000, args.size)
        print(
            f"core, instructions a message  ours {ours:,.0f}  {args.baseline_ref} {theirs:,.0f}"
            f"  ours/theirs {ours / theirs:.3f}"
        )
        return 0
    if args.journal is None:
        from bench.costs import journal

        args.journal = journal(100_000)
    with tempfile.TemporaryDirectory() as tmp:
        base = extract(args.baseline_ref, Path(tmp), "recorder")
        trees = {"ours": ROOT, args.baseline_ref: base}
        rows = {
            "core, us a message": (CORE, str(args.messages), str(HERE), str(args.size)),
            "md export, us a record": (EXPORT, str(args.journal), str(Path(tmp) / "out.md")),
        }
        for name, (code, *rest) in rows.items():
            got: dict[str, list[float]] = {t: [] for t in trees}
            for _ in range(args.rounds):
                for label, tree in trees.items():
                    got[label].append(run(tree, code, *rest))
            ours = statistics.median(got["ours"])
            theirs = statistics.median(got[args.baseline_ref])
            runs = "; ".join(f"{k} {', '.join(f'{v:.2f}' for v in vs)}" for k, vs in got.items())
            print(
                f"{name:24} ours {ours:6.2f}  {args.baseline_ref} {theirs:6.2f}  "
                f"ours/theirs {ours / theirs:.3f}  ({runs})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
