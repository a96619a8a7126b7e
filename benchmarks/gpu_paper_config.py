"""Throughput of the paper-sized configuration on a GPU, with random weights.

An RN50x64-sized CLIP teacher at 640 px (through the library's variable-size
ModifiedResNet path) and a ResNet-50 CAM student at 448 px, under bf16 autocast
with channels_last (``--compile`` adds torch.compile to the teacher's trunk and
the student's training step, as ``CCDClassifier(compile=True)`` does). Prints
images/s for the teacher's global pass, for crops, for student training steps,
and the fraction of the card's measured bf16 matrix-multiply rate the teacher
reaches. Needs CUDA; finishes in a few minutes. Nothing is downloaded (random
weights). Usage::

    python benchmarks/gpu_paper_config.py [--compile]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def _bench(fn, warmup: int = 3, iters: int = 10) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def matmul_rate() -> float:
    """Measured dense bf16 matrix-multiply rate of this card, in TFLOP/s."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    seconds = _bench(lambda: a @ b, warmup=5, iters=20)
    return 2 * 8192**3 / seconds / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("This benchmark needs a CUDA device.")
    from torch.utils.flop_counter import FlopCounterMode

    from ccd_estimator._student import build_student
    from ccd_estimator._teacher import Teacher

    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    peak = matmul_rate()
    print(f"{torch.cuda.get_device_name()}: measured bf16 matmul {peak:.0f} TFLOP/s")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        teacher = Teacher(
            "RN50x64",
            None,
            [f"class {i}" for i in range(20)],
            ["a photo of the {}"],
            device,
            precision="bf16",
            compile_kwargs={} if args.compile else None,
        )  # the Teacher puts a ResNet tower in channels_last itself
    x = torch.randn(args.batch, 3, 640, 640, device=device).contiguous(
        memory_format=torch.channels_last
    )
    compiled_trunk, teacher._trunk = teacher._trunk, teacher._resnet_trunk
    with (
        FlopCounterMode(display=False) as counter,
        torch.autocast("cuda", torch.bfloat16),
    ):
        teacher.encode(x[:1])  # counted eagerly: a compiled graph hides its ops
    flops = counter.get_total_flops()
    teacher._trunk = compiled_trunk
    seconds = _bench(lambda: teacher.scores(x))
    rate = args.batch / seconds
    achieved = flops * rate / 1e12
    print(
        f"teacher RN50x64 @640, batch {args.batch}: {rate:.0f} img/s, "
        f"{flops / 1e9:.0f} GFLOP/img, {achieved:.0f} TFLOP/s = "
        f"{100 * achieved / peak:.0f} % of measured bf16 matmul"
    )
    crops = torch.randn(args.batch * 2, 3, 640, 320, device=device)
    seconds = _bench(lambda: teacher.scores(crops))
    print(
        f"teacher crops 640x320, batch {args.batch * 2}: "
        f"{2 * args.batch / seconds:.0f} crops/s"
    )

    student = build_student("torchvision:resnet50", 20, None).to(device)
    student = student.to(memory_format=torch.channels_last)
    step_model = torch.compile(student) if args.compile else student
    opt = torch.optim.Adam(student.parameters(), lr=1e-5)
    xs = torch.randn(16, 3, 448, 448, device=device).contiguous(
        memory_format=torch.channels_last
    )
    ys = torch.rand(16, 20, device=device)

    def step() -> None:
        with torch.autocast("cuda", torch.bfloat16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                step_model(xs).float(), ys
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = _bench(step)
    print(f"student ResNet-50 @448 training, batch 16: {16 / seconds:.0f} img/s")
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
