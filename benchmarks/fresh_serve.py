"""A new user's first minute, side by side: `scripts/serve.sh` on a fresh clone with an empty pip cache.

    python -m benchmarks.fresh_serve [--refs 9766671 HEAD] [--photo PATH]

For each git ref: clone this repository into a temporary folder, run `scripts/serve.sh` there with a new empty
PIP_CACHE_DIR and BENTOML_HOME on a free port, and post a real photo to /classify until it is answered.
Prints the seconds from the command to that first answer, the size of the virtual environment it made and
whether TensorFlow is in it, then stops the server and removes the clone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers.sample_data import REAL_PHOTOS
from tests.helpers.server import folder_megabytes, installed_packages, serve_script_first_answer

ROOT = Path(__file__).resolve().parents[1]


def first_answer(ref: str, photo: Path) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="kitchenware-fresh-"))
    try:
        clone = scratch / "main"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", ref], check=True)
        seconds, answer = serve_script_first_answer(clone, photo, scratch / "pip-cache", scratch / "bentoml")
        packages = installed_packages(clone / ".venv")
        return {
            "ref": ref,
            "seconds to first answer": round(seconds, 1),
            "venv (MB)": round(folder_megabytes(clone / ".venv")),
            "packages": len(packages),
            "tensorflow in the venv": "tensorflow" in packages,
            "answer": f"{answer['label']} {answer['confidence']:.3f}",
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refs", nargs="+", default=["9766671", "HEAD"], help="git refs to compare, in order")
    parser.add_argument("--photo", type=Path, default=REAL_PHOTOS / "images" / "0009.jpg", help="the photo to classify")
    args = parser.parse_args()
    rows = [first_answer(ref, args.photo) for ref in args.refs]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
    if len(rows) == 2:
        print(
            f"time ratio {rows[1]['seconds to first answer'] / rows[0]['seconds to first answer']:.2f}, "
            f"size ratio {rows[1]['venv (MB)'] / rows[0]['venv (MB)']:.2f}"
        )


if __name__ == "__main__":
    main()
