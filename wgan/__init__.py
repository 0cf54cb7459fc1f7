"""wgan: Hydra-configured experiments for Wasserstein GAN research."""
import os

# OpenMP threads spin while they wait for work (libgomp's default); on a machine that other
# processes also use, spinning threads keep each other from the cores and a run collapses (a
# 60-iteration default run on 2 busy cores: 86.8 s spinning, 10.0 s passive; `make bench`, row 6).
# Set before torch loads its OpenMP runtime, which reads it once; the user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
