"""Training losses of the base network: cross-entropy, and the Lovász-softmax surrogate of mIoU.

Cross-entropy scores every pixel alike (up to the class weights), while mIoU scores each class's
intersection over union, so a thin class's few pixels count as much as the road's many. The
Lovász-softmax loss (Berman, Rannen Triki and Blaschko, CVPR 2018) is the convex extension of
each class's Jaccard loss to class probabilities; averaged over the classes present it is a
direct, differentiable surrogate of 1 - mIoU. ``ce+lovasz`` adds it to the cross-entropy.

Conventions: ``logits`` B x C x H x W, ``target`` B x H x W int64 with ``ignore_index`` for void.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lowlatseg.defaults import BASE_LOSSES as LOSSES


def lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss for errors sorted in decreasing order;
    ``fg_sorted``: P floats in {0, 1}, the foreground indicator in that order."""
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    if fg_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int) -> torch.Tensor:
    """Mean over the classes present in ``target`` of the Lovász extension of their Jaccard loss,
    computed over all the batch's labelled pixels together (a scalar; 0 if none is labelled)."""
    c = logits.shape[1]
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, c)  # P x C
    labels = target.reshape(-1)
    keep = labels != ignore_index
    probs, labels = probs[keep], labels[keep]
    losses = []
    for k in labels.unique().tolist():
        fg = (labels == k).to(probs.dtype)
        errors = (fg - probs[:, k]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, kind: str, weight: torch.Tensor | None,
                      ignore_index: int, lovasz_stride: int = 4) -> torch.Tensor:
    """The training loss ``kind`` (one of :data:`LOSSES`). The Lovász term is computed on every
    ``lovasz_stride``-th pixel of each axis (the logits and labels subsampled alike): its sorts over
    all the pixels of a batch of 8 crops of 288x384 took longer than a whole training step on 2
    cores; on every 4th pixel about 0.3 s of a ~1.8 s step (2026-12-08)."""
    loss = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)
    if kind == "ce":
        return loss
    if kind != "ce+lovasz":
        raise ValueError(f"unknown loss {kind!r}; choose one of: {', '.join(LOSSES)}")
    s = lovasz_stride
    return loss + lovasz_softmax(logits[..., ::s, ::s], target[..., ::s, ::s], ignore_index=ignore_index)
