"""Peak memory of fit as the number of images grows.

Generates small shape scenes once, then fits CCDClassifier on the first
2k, 5k and 20k of them, each in a fresh subprocess, and prints the peak
resident memory and time of each fit. Per-image state (pseudo-labels, flags,
teacher scores) is O(n_images x n_classes) float32, so growth beyond the fixed
cost of torch and the models should be small. Usage::

    python benchmarks/scale_memory.py --sizes 2000,5000,20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from ccd_estimator import CCDClassifier
from ccd_estimator.datasets import shapes_demo_params
paths = json.load(open(sys.argv[1]))[: int(sys.argv[2])]
params = shapes_demo_params()
params.update(
    teacher_image_size=32, image_size=32, cam_image_size=32, crop_size=32,
    max_epochs=2, update_epochs=(1,), batch_size=64, device="cpu",
)
start = time.perf_counter()
clf = CCDClassifier(**params, random_state=0).fit(paths)
seconds = time.perf_counter() - start
print(json.dumps({
    "n": len(paths),
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "seconds": seconds,
    "state_mb": sum(getattr(clf, a).nbytes for a in (
        "teacher_scores_", "pseudo_labels_", "initial_pseudo_labels_", "confident_"
    )) / 2**20,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,5000,20000")
    parser.add_argument("--folder", default=None, help="reuse generated scenes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(args.folder or tempfile.mkdtemp(prefix="ccd-scale-"))
    listing = folder / "paths.json"
    if not listing.exists() or len(json.loads(listing.read_text())) < max(sizes):
        from ccd_estimator.datasets import make_shape_scenes

        paths, _, _ = make_shape_scenes(
            max(sizes), out_dir=folder / "scenes", random_state=0, image_size=48
        )
        listing.write_text(json.dumps(paths))
    print(f"{'images':>8} {'peak RSS MB':>12} {'per-image state MB':>19} {'fit s':>7}")
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(listing), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['n']:>8} {r['peak_mb']:>12.0f} {r['state_mb']:>19.2f} "
            f"{r['seconds']:>7.0f}"
        )


if __name__ == "__main__":
    main()
