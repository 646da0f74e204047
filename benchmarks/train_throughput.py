"""Training throughput: our trainer vs a plain pytorch/examples-style DCGAN loop, side by side.

(a) reference: the loop of pytorch/examples `dcgan/main.py` (sigmoid + BCELoss, three D passes,
    Adam(2e-4, (0.5, 0.999))), data already decoded in memory as a float tensor;
(b) ours: the `Trainer` step fed by the decoded cache built from a folder of PNGs, on the same
    architecture (`upsample="transpose"`), once more in fp32, and with our default
    upsample+conv generator.
Both use the same network classes, widths and batch size, so the ratio measures the training
step. Images/s are medians over 5-step windows after a warm-up window, then the median over
interleaved repeats, by wall clock and by the process's CPU time (steady under contention).

    python benchmarks/train_throughput.py [--threads 2] [--repeats 3] [--windows 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, markdown_table, median, set_threads, write_section  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.demo import load_mnist, write_digits  # noqa: E402
from gan_augment.gan.devices import select_device  # noqa: E402
from gan_augment.gan.models import build_models  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.scan.cache import build_cache  # noqa: E402
from gan_augment.training.trainer import Trainer  # noqa: E402

WINDOW = 5  # steps per timing window


def write_mnist_folder(folder: str, count: int) -> None:
    write_digits(folder, load_mnist()[0][:count])


def write_photo_folder(folder: str, count: int, size: int = 64) -> None:
    """Random crops of the two photographs scikit-learn ships, as size x size RGB PNGs."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(size, min(photo.shape[:2])))
        top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        crop.save(os.path.join(folder, f"{i:05d}.png"))


def reference_step(images: torch.Tensor, config: ModelConfig, batch: int, device: torch.device):
    """One iteration of the pytorch/examples dcgan loop, verbatim in structure, on a float
    tensor in memory."""
    torch.manual_seed(0)
    net_g, net_d = build_models(config)
    net_g, net_d = net_g.to(device), net_d.to(device)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = to_model_range(images).to(device)  # (N, C, S, S) float in [-1, 1]
    real_label, fake_label = torch.ones(batch, device=device), torch.zeros(batch, device=device)

    def step() -> None:
        index = int(torch.randint(0, data.shape[0] - batch, (1,)))
        real = data[index:index + batch]
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        net_d.zero_grad()
        err_d_real = criterion(torch.sigmoid(net_d(real)), real_label)
        err_d_real.backward()
        fake = net_g(torch.randn(batch, config.latent_dim, device=device))
        err_d_fake = criterion(torch.sigmoid(net_d(fake.detach())), fake_label)
        err_d_fake.backward()
        opt_d.step()
        # (2) Update G network: maximize log(D(G(z)))
        net_g.zero_grad()
        err_g = criterion(torch.sigmoid(net_d(fake)), real_label)
        err_g.backward()
        opt_g.step()

    return step


def ours_step(cache, config: ModelConfig, batch: int, train_config: TrainConfig):
    """One step of our Trainer (data from the decoded cache, EMA, all of it)."""
    trainer = Trainer(cache, "memory://bench/model", config, train_config, dataset="bench")
    return trainer.training_step


def images_per_second(step, batch: int, windows: int, device: torch.device) -> tuple[float, float]:
    """Median (wall, CPU-time) images/s over `windows` timed windows after one warm-up window.
    CPU time is the process's own, so it holds still when other processes share the cores."""
    wall, cpu = [], []
    for window in range(windows + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(WINDOW):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if window:  # the first window is warm-up (allocator, oneDNN/cuDNN kernel choice)
            wall.append(WINDOW * batch / (time.perf_counter() - started))
            cpu.append(WINDOW * batch / (time.process_time() - cpu_started))
    return median(wall), median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", type=int, default=3, help="timed windows of 5 steps per repeat")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    set_threads(args.threads)
    device = select_device("auto")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, channels, writer in (("mnist", 32, 1, write_mnist_folder), ("photos", 64, 3, write_photo_folder)):
            folder = os.path.join(tmp, name)
            writer(folder, args.images)
            started = time.perf_counter()
            cache = build_cache(folder, size, channels)  # our trainer reads the folder through this cache
            decode_rate = len(cache) / (time.perf_counter() - started)
            # The seed article's DCGAN on both sides: the same networks and losses, so the ratio is
            # the training loop's speed alone (the default recipe trains another objective).
            transpose = ModelConfig.seed_dcgan(image_size=size, channels=channels, upsample="transpose")
            seed = TrainConfig.seed_dcgan(batch_size=args.batch_size)
            loops = {
                "reference (pytorch/examples loop)": reference_step(cache.images, transpose, args.batch_size, device),
                "ours, transpose G": ours_step(cache, transpose, args.batch_size, seed),
                "ours, transpose G, fp32": ours_step(cache, transpose, args.batch_size,
                                                     dataclasses.replace(seed, amp=False)),
                "ours, default G (upsample+conv)": ours_step(
                    cache, ModelConfig.seed_dcgan(image_size=size, channels=channels), args.batch_size, seed),
            }
            results: dict[str, list[tuple[float, float]]] = {k: [] for k in loops}
            for repeat in range(args.repeats):  # interleaved, so noise hits every loop alike
                for loop, step in loops.items():
                    results[loop].append(images_per_second(step, args.batch_size, args.windows, device))
                print(f"{name} repeat {repeat + 1}: " + ", ".join(
                    f"{k} {v[-1][0]:.0f}/{v[-1][1]:.0f}" for k, v in results.items()), flush=True)
            reference = results["reference (pytorch/examples loop)"]
            ref_wall, ref_cpu = median([w for w, _ in reference]), median([c for _, c in reference])
            for loop, values in results.items():
                wall, cpu = median([w for w, _ in values]), median([c for _, c in values])
                rows.append([f"{size}x{size}x{channels} ({name})", loop, f"{wall:.0f}", f"{wall / ref_wall:.2f}",
                             f"{cpu:.0f}", f"{cpu / ref_cpu:.2f}"])
            rows.append([f"{size}x{size}x{channels} ({name})", "cache build (decode once, img/s)",
                         f"{decode_rate:.0f}", "", "", ""])
    table = markdown_table(["images", "loop", "img/s (wall)", "vs reference", "img per CPU-s", "vs reference"], rows)
    body = (f"Command: `python benchmarks/train_throughput.py --threads {args.threads} --repeats {args.repeats} "
            f"--windows {args.windows}`\n\nMachine: {machine_line(args.threads)}; device {device}; batch "
            f"{args.batch_size}; ngf = ndf = 64; medians of {args.repeats} interleaved repeats, each the median "
            f"of {args.windows} windows of {WINDOW} steps.\n\n{table}\n")
    print(body)
    if not args.no_write:
        write_section(f"Training throughput ({device.type})", body)


if __name__ == "__main__":
    main()
