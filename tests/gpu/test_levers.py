"""The speed levers on a GPU (collected only where torch sees one: see tests/conftest.py).

    pytest tests/gpu          # on a machine with a CUDA GPU
"""
from __future__ import annotations

import pytest
import torch

from test_speed import losses

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

@pytest.mark.parametrize("lever", ["speed.cuda_graphs=true", "speed.channels_last=true", "speed.fused_optimizer=true",
                                   "speed.precision=bf16"])
@pytest.mark.parametrize("method", ["method=wgan_gp", "method=wgan_clip", "method=dcgan"])
def test_each_lever_on_the_gpu_trains_as_the_plain_gpu_run(tmp_path, lever, method):
    plain = losses(tmp_path, "device=cuda", method)
    # Graphs and fused kernels compute the same; channels_last picks other (TF32) convolution
    # kernels and bf16 rounds: their losses, differences of near-equal terms, agree less closely.
    tolerance = {"speed.channels_last=true": 0.03, "speed.precision=bf16": 0.05}.get(lever, 1e-3)
    assert torch.allclose(plain, losses(tmp_path, "device=cuda", method, lever), rtol=tolerance, atol=tolerance)
