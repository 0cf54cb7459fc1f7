"""Pictures of a run: for images, a grid of samples; for 2-D data, samples over the data and the
critic's value contours (the paper's Figure 1a)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

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
    ax.scatter(real[:, 0], real[:, 1], s=2, c="orange", alpha=0.5, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="white", alpha=0.5, label="generated")
    ax.set(xlim=(-extent, extent), ylim=(-extent, extent), aspect="equal", title=title)
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def image_grid(images: torch.Tensor, path: Path) -> Path:
    """Save images in [-1, 1] as a square-ish grid PNG."""
    from torchvision.utils import save_image  # imported on use: toy runs never need torchvision

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, path, nrow=max(1, int(len(images) ** 0.5)), normalize=True, value_range=(-1, 1))
    return path
