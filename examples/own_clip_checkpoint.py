"""Use your own CLIP checkpoint, offline: a config file and a weights file.

``CCDClassifier`` loads its teacher through open_clip. Every download is
optional:

* ``model_name`` may be the path of an open_clip model config (JSON), which is
  registered under the file's stem, for a custom architecture;
* ``pretrained`` may be the path of a checkpoint file (safetensors or a torch
  state dict) instead of a tag;
* ``student_weights`` may be the path of the student backbone's weights file.

This example plays a user with a custom CLIP model: it builds an open_clip
model from a config, loads weights into it, saves both as ``my_clip.json`` and
``my_clip.safetensors`` (here from the small shapes teacher that ships with the
package, standing in for your fine-tuned model), saves a student backbone file
the same way, and fits ``CCDClassifier`` from those files with
``HF_HUB_OFFLINE=1``, so that any accidental download attempt fails at once.

With ``--download`` (needs a network and about 2.5 GB) it instead fetches the
paper's teacher, RN50x64 with OpenAI's weights, and writes it to a local
safetensors file that you can copy to an offline machine; the parameters to use
it are printed either way.

Run ``python examples/own_clip_checkpoint.py`` or add ``--quick`` (or set
``CCD_EXAMPLE_QUICK=1``) for a tiny run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("CCD_EXAMPLE_QUICK", "") not in ("", "0"),
        help="a tiny run for smoke tests (also: CCD_EXAMPLE_QUICK=1)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download RN50x64/openai (needs a network) and save it to --out",
    )
    parser.add_argument(
        "--out", default=None, help="folder for the files (default: a temp folder)"
    )
    return parser.parse_args()


ARGS = parse_args()
if not ARGS.download:
    # must be set before huggingface_hub is imported (open_clip imports it):
    # a download attempt then fails immediately instead of after retries
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

import open_clip  # noqa: E402
import timm  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from ccd_estimator import CCDClassifier  # noqa: E402
from ccd_estimator.datasets import (  # noqa: E402
    SHAPE_CLASSES,
    make_shape_scenes,
    shapes_demo_params,
    shapes_teacher_files,
)

# The paper's teacher and student, for users with a network (or with the files).
PAPER_TEACHER = dict(
    model_name="RN50x64-quickgelu",  # OpenAI weights need QuickGELU
    pretrained="openai",  # or the path of the file --download writes
    teacher_image_size=640,  # any size works for ModifiedResNet towers
    cam_image_size=640,
    crop_size=640,
    student="torchvision:resnet50",
    student_weights="IMAGENET1K_V1",  # or a local file, e.g. resnet50-0676ba61.pth
)


def save_state_dict(module, path: Path) -> None:
    """Write a module's weights as a safetensors file."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def download_paper_teacher(out: Path) -> None:
    """Fetch RN50x64/openai once and keep it as a local safetensors file."""
    model = open_clip.create_model("RN50x64-quickgelu", pretrained="openai")
    path = out / "RN50x64-quickgelu-openai.safetensors"
    save_state_dict(model, path)
    print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB)")
    print("use it offline with:")
    print(f'  CCDClassifier(..., model_name="RN50x64-quickgelu", pretrained="{path}")')


def make_own_checkpoint(out: Path) -> tuple[str, str]:
    """Build an open_clip model from a config, load weights, save both."""
    shipped_config, shipped_weights = shapes_teacher_files()
    config = json.loads(Path(shipped_config).read_text(encoding="utf-8"))
    # your architecture: any open_clip config (embed_dim, vision_cfg, text_cfg)
    config_path = out / "my_clip.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    open_clip.add_model_config(config_path)  # registered as "my_clip"
    # your weights: here the shipped teacher's, as if you had fine-tuned them
    model = open_clip.create_model("my_clip", pretrained=shipped_weights)
    weights_path = out / "my_clip.safetensors"
    save_state_dict(model, weights_path)
    return str(config_path), str(weights_path)


def make_student_weights(out: Path, params: dict) -> str:
    """A backbone weights file (stands in for e.g. ImageNet weights you copied)."""
    kwargs = {k: v for k, v in params["student_kwargs"].items() if k == "channels"}
    backbone = timm.create_model(params["student"].split(":", 1)[1], **kwargs)
    path = out / "my_student.safetensors"
    save_state_dict(backbone, path)
    return str(path)


def main(out: Path) -> None:
    if ARGS.download:
        download_paper_teacher(out)
        return

    params = shapes_demo_params()
    classes = list(SHAPE_CLASSES[:4]) if ARGS.quick else list(params["class_names"])
    n_train = 40 if ARGS.quick else 600
    if ARGS.quick:
        params.update(max_epochs=2, update_epochs=(1,), consistency_start=1)

    config_path, weights_path = make_own_checkpoint(out)
    student_path = make_student_weights(out, params)
    print(f"config:  {config_path}")
    print(f"weights: {weights_path}")
    print(f"student: {student_path}")

    paths, _, _ = make_shape_scenes(
        n_train, out_dir=out / "scenes", classes=classes, random_state=0
    )
    params.update(
        class_names=classes,
        model_name=config_path,  # a JSON config: a custom architecture
        pretrained=weights_path,  # a file: nothing is downloaded
        student_weights=student_path,  # a file as well
        random_state=0,
    )
    clf = CCDClassifier(**params).fit(paths)
    info = clf.teacher_info_
    print(
        f"fitted offline with teacher {info['model_name']!r} "
        f"({info['tower']}, native {info['native_image_size']} px, "
        f"logit scale {info['logit_scale']:.1f})"
    )
    print("the paper's configuration (needs the files or a network):")
    for key, value in PAPER_TEACHER.items():
        print(f"  {key}={value!r}")


if __name__ == "__main__":
    if ARGS.out is not None:
        folder = Path(ARGS.out)
        folder.mkdir(parents=True, exist_ok=True)
        main(folder.resolve())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
