"""Pictures of a run: for images, a grid of samples; for 2-D data, samples over the data and the
critic's value contours (the paper's Figure 1a); for text, the samples as lines of a text file."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wgan.dataset.kind import DataKind

GRID_POINTS = 128


@torch.no_grad()
def critic_surface(critic: nn.Module, extent: float, device) -> torch.Tensor:
    """The critic's value on a GRID_POINTS x GRID_POINTS grid over [-extent, extent]^2."""
    axis = torch.linspace(-extent, extent, GRID_POINTS)
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    points = torch.stack([xs.flatten(), ys.flatten()], dim=1).to(device)
    return critic(points).reshape(GRID_POINTS, GRID_POINTS).cpu()


def figure(width: float, height: float):
    """A matplotlib Figure of width x height inches at 100 dpi: Agg, without pyplot's global backend
    and state; imported on use (image runs never draw one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def toy_figure(real: torch.Tensor, fake: torch.Tensor, critic: nn.Module, path: Path, title: str) -> Path:
    real, fake = real.cpu(), fake.cpu()
    extent = 1.2 * float(real.abs().max())
    surface = critic_surface(critic, extent, next(critic.parameters()).device)
    fig = figure(5, 5)
    ax = fig.subplots()
    contours = ax.contourf(surface.numpy(), levels=30, cmap="viridis", extent=(-extent, extent, -extent, extent))
    fig.colorbar(contours, ax=ax, fraction=0.046, pad=0.04, label="critic value")
    # Distinct markers as well as colours: readable in grey, and where the two clouds overlap.
    ax.scatter(real[:, 0], real[:, 1], s=6, c="orange", marker="+", linewidths=0.6, alpha=0.6, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="white", marker="o", edgecolors="black", linewidths=0.2, alpha=0.8,
               label="generated")
    ax.set(xlim=(-extent, extent), ylim=(-extent, extent), aspect="equal", title=title)
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


LABEL_HEIGHT = 14  # pixels above an image grid for its label: PIL's built-in font is 11 high


CLASS_ROWS = 10  # a conditional model's figure: 10 samples of each class, a class per column (Figure 6, right)


def figure_count(kind: DataKind, num_classes: int) -> int:
    """How many samples of the fixed noise batch each evaluation shows."""
    return num_classes * CLASS_ROWS if num_classes else kind.figure_samples


def image_grid(images: torch.Tensor, path: Path, label: str, columns: int | None = None) -> Path:
    """Save images in [-1, 1] as a grid PNG (torchvision's, 2-pixel padding), `columns` wide (None:
    square-ish), row by row, under a strip that says what they are, e.g.
    `wgan_gp-random7-cifar10-s0, iteration 2000`."""
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid  # imported on use: toy runs never need torchvision

    grid = make_grid(images, nrow=columns or max(1, int(len(images) ** 0.5)), normalize=True, value_range=(-1, 1))
    # As torchvision's save_image rounds a grid to 8 bits.
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    picture = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + LABEL_HEIGHT), "white")
    picture.paste(Image.fromarray(pixels), (0, LABEL_HEIGHT))
    ImageDraw.Draw(picture).text((2, 1), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


TEXT_SUFFIX = ".txt"  # text samples are written, and logged, as a text file


def text_samples(lines: list[str], path: Path) -> Path:
    """Save generated sentences one per line, in `path` with the suffix of text files."""
    path = path.with_suffix(TEXT_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
