"""Flow-guided adaptive propagation: DIS flow for the large motion, learned kernels for the rest.

Beyond the paper. Its adaptive propagation reaches only ``K // 2 * dilation`` feature cells
(6 cells = 48 image px at stride 8 with K=7, dilation 2), less than near-camera motion in city
video over a few frames; optical flow reaches any distance but is blurred at object borders
and wrong where content appears or disappears. This method does both, in order:

1. backward DIS flow current -> key on the grey frames (as :class:`~lowlatseg.propagation.methods.FlowWarp`),
   area-averaged to the feature grid;
2. the keyframe's features *and* its low-level features are warped by that flow;
3. a :class:`~lowlatseg.propagation.predictor.KernelPredictor` sees the warped key low-level
   features and the current ones and predicts a small spatially variant kernel per location
   (K=5, dilation 1 by default: a residual correction of +-2 feature pixels), applied to the
   warped features by the same spatially variant convolution as the paper's method.

With zero flow and a centre-only kernel it is the identity; the predictor starts with a strong
centre tap (``PropagationConfig.centre_weight``) and learns the correction from there.
"""

from __future__ import annotations

import torch

from lowlatseg.propagation.flow import DISFlow
from lowlatseg.propagation.methods import Current, KeyState, PropagationConfig, _Base, flow_warp_with_low
from lowlatseg.propagation.predictor import KernelPredictor
from lowlatseg.propagation.svconv import load_compiled, sv_conv


class FlowGuided(_Base):
    """Warp by DIS flow, then correct with predicted per-location kernels (see the module doc)."""

    name = "flow-guided"

    def __init__(self, cfg: PropagationConfig, *, low_ch: int) -> None:
        super().__init__()
        self.kernel_size, self.dilation = cfg.guided_kernel_size, cfg.guided_dilation
        self.flow = DISFlow(cfg.flow_preset, cfg.flow_downscale)
        self.predictor = KernelPredictor(low_ch=low_ch, kernel_size=self.kernel_size, dilation=self.dilation,
                                         embed_ch=cfg.embed_ch, hidden=cfg.hidden,
                                         centre_weight=cfg.centre_weight, full_correlation=cfg.full_correlation,
                                         sharpness=cfg.guided_sharpness)
        load_compiled()

    def warp(self, key: KeyState, cur: Current, features: torch.Tensor) -> torch.Tensor:
        moved, moved_low = flow_warp_with_low(self.flow, key, cur, features)
        weights = self.predictor(moved_low, cur.f_low)  # B x K*K x h x w
        return sv_conv(moved, weights, kernel_size=self.kernel_size, dilation=self.dilation)
