"""wgan: Hydra-configured experiments for Wasserstein GAN research."""
__version__ = "0.1.0"
