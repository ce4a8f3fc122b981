"""Warm starts from a trained split network.

* Growing it into a deeper variant (``train base --init``, :func:`grow_from`): every tensor of the smaller network is copied into the tensor of the same name and shape in
the larger one; the larger one's extra residual blocks start as the identity (the scale and shift
of their last BatchNorm are zero, the ``zero-init residual`` trick), so the grown network computes exactly
what the smaller one computed until training changes the new blocks.
* A new head on its body (``train base --body-from``, :func:`copy_body`, :func:`freeze_body`):
  ``low`` and ``high`` are copied and frozen, only the head trains.
"""

from __future__ import annotations

from dataclasses import fields

from torch import nn

from lowlatseg.errors import UserError
from lowlatseg.nn.blocks import BasicBlock
from lowlatseg.nn.splitnet import SplitSegNet


def grow_from(target: SplitSegNet, source: SplitSegNet) -> list[str]:
    """Copy ``source`` into ``target`` (in place); returns the names of the new blocks.

    Raises ``UserError`` when a source tensor has no same-shaped place in the target, or when
    a target tensor is new but not inside a residual block that can start as the identity.
    """
    a, b = source.config, target.config
    if a.num_classes != b.num_classes:
        raise UserError(f"cannot grow {b.arch} ({b.num_classes} classes) from a network with {a.num_classes} classes; "
                        "train on the same label set")
    fixed = [f for f in fields(a) if f.name not in ("arch", "mid_blocks", "mid_dilations")]
    differ = [f.name for f in fixed if getattr(a, f.name) != getattr(b, f.name)]
    dil_a = a.mid_dilations or (1,) * a.mid_blocks
    dil_b = b.mid_dilations or (1,) * b.mid_blocks
    if differ or tuple(dil_b[: len(dil_a)]) != tuple(dil_a):
        what = ", ".join(differ) if differ else "the dilations of the existing stride-8 blocks"
        raise UserError(f"cannot grow {b.arch} from {a.arch}: {what} differ; the target must only add stride-8 blocks after the source's")
    src = source.state_dict()
    dst = target.state_dict()
    for name, t in src.items():
        if name not in dst or dst[name].shape != t.shape:
            have = tuple(dst[name].shape) if name in dst else "nothing"
            raise UserError(
                f"cannot grow {target.config.arch} from {source.config.arch}: {name} has shape "
                f"{tuple(t.shape)} in the source and {have} in the target; pick a deeper variant of the same widths"
            )
        dst[name] = t.clone()
    new_blocks: list[str] = []
    new_names = set(dst) - set(src)
    for mod_name, mod in target.named_modules():
        prefix = mod_name + "."
        if isinstance(mod, BasicBlock) and any(n.startswith(prefix) for n in new_names):
            if not isinstance(mod.shortcut, nn.Identity) or any(
                n.startswith(prefix) and not n.startswith(prefix + "conv") for n in new_names
            ):
                raise UserError(f"cannot grow: new block {mod_name} changes shape, so it cannot start as the identity")
            dst[prefix + "conv2.1.weight"].zero_()  # BN scale and shift 0: the residual branch adds 0
            dst[prefix + "conv2.1.bias"].zero_()
            new_blocks.append(mod_name)
    covered = {n for n in new_names if any(n.startswith(b + ".") for b in new_blocks)}
    if covered != new_names:
        raise UserError(f"cannot grow: new tensors outside residual blocks: {', '.join(sorted(new_names - covered)[:4])}")
    target.load_state_dict(dst, strict=True)
    return new_blocks


_BODY_FIELDS = ("num_classes", "stem_ch", "low_ch", "low_blocks", "mid_blocks", "mid_dilations", "s16_ch", "s16_blocks",
                "s32_ch", "s32_blocks", "high_ch", "backbone", "output_stride")


def copy_body(target: SplitSegNet, source: SplitSegNet) -> None:
    """Copies ``low`` and ``high`` of ``source`` into ``target`` (in place, strictly); the head
    keeps its fresh initialisation (``train base --body-from``: a new head on a trained body).
    Raises ``UserError`` when the two bodies are not built alike."""
    a, b = source.config, target.config
    differ = [f for f in _BODY_FIELDS if getattr(a, f) != getattr(b, f)]
    if differ:
        raise UserError(f"cannot take the body of {b.arch} from {a.arch}: {', '.join(differ)} differ; "
                        "pick a network built with the same low and high")
    target.low.load_state_dict(source.low.state_dict(), strict=True)
    target.high.load_state_dict(source.high.state_dict(), strict=True)


def freeze_body(net: SplitSegNet) -> list[nn.Module]:
    """Stops gradients through ``low`` and ``high`` and returns them, for the training loop to
    keep in eval mode (their BatchNorm statistics stay those of the body's own training)."""
    for part in (net.low, net.high):
        for p in part.parameters():
            p.requires_grad_(False)
    return [net.low, net.high]
