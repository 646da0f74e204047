"""Where a training step's time goes, and what each speed-up of the trainer buys on its own.

1. torch.profiler's top operators of one `TrainingStep` (fp32, transpose generator).
2. An ablation on identical networks (ngf = ndf = 64, batch 64), each variant timed by the
   process's CPU time (steady when other processes share the cores): the pytorch/examples
   loop, then a logits loop with each technique alone and combined, and the default
   generator's Upsample+Conv3x3 run literally vs as the folded transposed convolution.

    python benchmarks/profile_step.py [--size 32 --channels 1] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, markdown_table, median, set_threads, write_section  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.gan.losses import discriminator_loss, generator_loss  # noqa: E402
from gan_augment.gan.models import UpsampleConv2d, build_models  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402
from gan_augment.training.trainer import Trainer  # noqa: E402

BATCH = 64


def unfold_upsample_convs(module: nn.Module) -> None:
    """Replace every folded UpsampleConv2d by the literal Upsample(x2) + Conv2d(3x3) it equals."""
    for name, child in module.named_children():
        if isinstance(child, UpsampleConv2d):
            conv = nn.Conv2d(child.in_channels, child.out_channels, 3, 1, 1, bias=child.bias is not None)
            conv.load_state_dict(child.state_dict())
            setattr(module, name, nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv))
        else:
            unfold_upsample_convs(child)


def make_step(size: int, channels: int, *, reference: bool = False, freeze: bool = False, channels_last: bool = False,
              bf16: bool = False, upsample: str = "transpose", unfold: bool = False):
    torch.manual_seed(0)
    net_g, net_d = build_models(ModelConfig.seed_dcgan(image_size=size, channels=channels, upsample=upsample))
    if unfold:
        unfold_upsample_convs(net_g)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net_g.to(memory_format=memory_format)
    net_d.to(memory_format=memory_format)
    opt_g = torch.optim.Adam(net_g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), 2e-4, betas=(0.5, 0.999))
    data = (torch.rand(1024, channels, size, size) * 2 - 1).contiguous(memory_format=memory_format)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    criterion, ones, zeros = nn.BCELoss(), torch.ones(BATCH), torch.zeros(BATCH)

    def reference_step() -> None:  # pytorch/examples: sigmoid + BCELoss, D's real and fake passes apart
        real = data[:BATCH]
        net_d.zero_grad()
        criterion(torch.sigmoid(net_d(real)), ones).backward()
        fake = net_g(torch.randn(BATCH, 100))
        criterion(torch.sigmoid(net_d(fake.detach())), zeros).backward()
        opt_d.step()
        net_g.zero_grad()
        criterion(torch.sigmoid(net_d(fake)), ones).backward()
        opt_g.step()

    def logits_step() -> None:  # the structure of TrainingStep
        real = data[:BATCH]
        with autocast():
            fake = net_g(torch.randn(BATCH, 100))
            loss_d = discriminator_loss("bce", net_d(real), net_d(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        net_d.requires_grad_(not freeze)
        with autocast():
            loss_g = generator_loss("bce", net_d(fake))
        opt_g.zero_grad()
        loss_g.backward()
        net_d.requires_grad_(True)
        opt_g.step()

    return reference_step if reference else logits_step


def cpu_ms_per_step(step, steps: int = 5) -> float:
    for _ in range(2):
        step()
    started = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - started) / steps * 1000


def profile_trainer(size: int, channels: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    images = torch.randint(0, 255, (1024, channels, size, size), dtype=torch.uint8)
    cache = ImageCache(images, [str(i) for i in range(1024)], "profile", {})
    config = ModelConfig.seed_dcgan(image_size=size, channels=channels, upsample="transpose")
    trainer = Trainer(cache, "memory://profile/model", config, TrainConfig.seed_dcgan(batch_size=BATCH, amp=False),
                      dataset="profile")
    for _ in range(2):
        trainer.training_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            trainer.training_step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [[e.key, f"{100 * e.self_cpu_time_total / total:.1f}%", e.count // 3] for e in events[:8]]
    return markdown_table(["operator (fp32 TrainingStep)", "self CPU time", "calls per step"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    set_threads(args.threads)
    size, channels = args.size, args.channels
    variants = {
        "pytorch/examples loop (sigmoid + BCELoss)": dict(reference=True),
        "logits loop, fp32": {},
        "+ D frozen during G's backward": dict(freeze=True),
        "+ channels_last": dict(channels_last=True),
        "+ bf16 autocast": dict(bf16=True),
        "all three (our trainer's CPU path)": dict(freeze=True, channels_last=True, bf16=True),
        "default G, literal Upsample + Conv3x3, fp32": dict(upsample="nearest", unfold=True),
        "default G, folded transposed conv, fp32": dict(upsample="nearest"),
    }
    steps = {name: make_step(size, channels, **kwargs) for name, kwargs in variants.items()}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved repeats
        for name, step in steps.items():
            timings[name].append(cpu_ms_per_step(step))
    reference = median(timings["pytorch/examples loop (sigmoid + BCELoss)"])
    rows = [[name, f"{median(t):.0f}", f"{reference / median(t):.2f}"] for name, t in timings.items()]
    ablation = markdown_table(["variant (same networks, transpose G unless noted)", "CPU ms / step",
                               "speed vs pytorch/examples"], rows)
    body = (f"Command: `python benchmarks/profile_step.py --size {size} --channels {channels} --threads "
            f"{args.threads} --repeats {args.repeats}`\n\nMachine: {machine_line(args.threads)}; "
            f"{size}x{size}x{channels}, batch {BATCH}, ngf = ndf = 64; CPU time per step, median of "
            f"{args.repeats} interleaved repeats of 5 steps.\n\n{profile_trainer(size, channels)}\n\n{ablation}\n")
    print(body)
    if not args.no_write:
        write_section(f"Profile of the training step ({size}x{size}x{channels}, CPU)", body)


if __name__ == "__main__":
    main()
