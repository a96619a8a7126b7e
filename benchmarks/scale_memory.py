"""Peak memory of fit as the number of images grows.

Generates small shape scenes once, then fits CCDClassifier on the first
2k, 5k and 20k of them, each in a fresh subprocess, and prints the peak
resident memory and time of each fit. Per-image state (pseudo-labels, flags,
teacher scores) is O(n_images x n_classes) float32, so growth beyond the fixed
cost of torch and the models should be small. Usage::

    python benchmarks/scale_memory.py --sizes 2000,5000,20000 [--workers 2]

With ``--workers N`` the fits load images in N DataLoader worker processes;
the largest worker's peak RSS (shared pages included) and the peak of the
workers' summed private memory (USS) are sampled every 0.2 s with psutil
(``pip install psutil``; without it those columns are nan).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

CHILD = r"""
import json, resource, sys, threading, time
from ccd_estimator import CCDClassifier
from ccd_estimator.datasets import shapes_demo_params
paths = json.load(open(sys.argv[1]))[: int(sys.argv[2])]
params = shapes_demo_params()
params.update(
    teacher_image_size=32, image_size=32, cam_image_size=32, crop_size=32,
    max_epochs=2, update_epochs=(1,), batch_size=64, device="cpu",
    n_workers=int(sys.argv[3]),
)
peak = {"rss": 0, "uss": 0}
done = threading.Event()

def sample_workers():
    # DataLoader workers are children of this process: the largest one's RSS
    # (shared pages included) and the sum of their private memory (USS, what
    # copy-on-write growth would show)
    try:
        import psutil
    except ImportError:
        peak["rss"] = peak["uss"] = float("nan")
        return
    me = psutil.Process()
    while not done.is_set():
        rss = uss = 0
        for child in me.children():
            try:
                info = child.memory_full_info()
            except psutil.Error:
                continue
            rss, uss = max(rss, info.rss), uss + info.uss
        peak["rss"], peak["uss"] = max(peak["rss"], rss), max(peak["uss"], uss)
        done.wait(0.2)

sampler = threading.Thread(target=sample_workers, daemon=True)
sampler.start()
start = time.perf_counter()
clf = CCDClassifier(**params, random_state=0).fit(paths)
seconds = time.perf_counter() - start
done.set()
sampler.join()
print(json.dumps({
    "n": len(paths),
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": peak["rss"] / 2**20,
    "worker_uss_mb": peak["uss"] / 2**20,
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
    parser.add_argument("--workers", type=int, default=0, help="n_workers of fit")
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
    print(f"n_workers={args.workers}, torch threads {torch.get_num_threads()}")
    print(
        f"{'images':>8} {'peak RSS MB':>12} {'worker RSS MB':>14} "
        f"{'workers USS MB':>15} {'fitted arrays MB':>17} {'fit s':>7}"
    )
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(listing), str(n), str(args.workers)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['n']:>8} {r['peak_mb']:>12.0f} {r['worker_rss_mb']:>14.0f} "
            f"{r['worker_uss_mb']:>15.0f} "
            f"{r['state_mb']:>17.2f} {r['seconds']:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
