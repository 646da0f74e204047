"""PNG renderings of training progress: sample grids and loss curves."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from PIL import Image
from torch import Tensor

from gan_augment.gan.pixels import images_to_uint8


def encode_png(array: Tensor) -> bytes:
    """(C, H, W) uint8 tensor -> PNG bytes (grayscale for C == 1)."""
    hwc = array.cpu().permute(1, 2, 0).numpy()
    image = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_grid_png(images: Tensor, columns: int | None = None) -> bytes:
    """A grid of generated images (B, C, H, W) in [-1, 1] as PNG bytes: `columns` images a row,
    square-ish when None."""
    from torchvision.utils import make_grid  # here: torchvision.utils loads all of torchvision

    grid = make_grid(images_to_uint8(images).cpu(), nrow=columns or int(math.ceil(math.sqrt(images.shape[0]))),
                     padding=2, pad_value=0)
    if images.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats grayscale to RGB; keep one channel
    return encode_png(grid)


def loss_curve_png(history: Mapping[str, Sequence[float]], title: str = "") -> bytes:
    """Both losses and D's mean outputs against the step, as PNG bytes."""
    import matplotlib  # imported here: only training renders plots, and pyplot is slow to load

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (ax_loss, ax_prob) = plt.subplots(1, 2, figsize=(10, 3.5), dpi=100)
    steps = history.get("step", [])
    ax_loss.plot(steps, history.get("loss_d", []), label="loss D")
    ax_loss.plot(steps, history.get("loss_g", []), label="loss G")
    ax_loss.set_xlabel("step")
    ax_loss.legend()
    ax_prob.plot(steps, history.get("d_real", []), label="D(x)")
    ax_prob.plot(steps, history.get("d_fake", []), label="D(G(z))")
    ax_prob.set_xlabel("step")
    ax_prob.set_ylim(0, 1)
    ax_prob.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
