"""The training set's online augmentation and training noise (the push and test sets are never augmented)."""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torchvision import transforms

from .config import TrainConfig
from .product_shots import PolarityAugment


def make_augmentation(cfg: TrainConfig) -> Optional[Callable]:
    """The training set's online augmentation (the push and test sets are never augmented).

    paper: the online equivalent of the reference's offline augmentation, whose 30 copies of an image each had one of
    rotation (up to 15 degrees), skew (perspective, 0.2) or shear (up to 10 degrees), then a left-right flip half the
    time: here each draw takes one of the three, then the flip. Unlike the reference's Augmentor, which zooms the
    rotated or sheared image to cut off the corners it uncovers, those corners are black here.
    crop-flip: a random crop of the image padded with `crop_padding` black pixels, and a left-right flip (small
    centred images such as Fashion-MNIST, where rotation and shear move garments off their usual pose).
    """
    if not cfg.augment:
        return None
    steps = _shape_augmentation(cfg)
    if cfg.polarity_augment > 0:   # after the crop: its black padding becomes the product shot's light ground
        steps.append(PolarityAugment(cfg.polarity_augment))
    return transforms.Compose(steps) if steps else None


def add_training_noise(images: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """A batch [N, C, H, W] in [0, 1] with Gaussian noise of a sigma drawn per image from [0, max_sigma], clipped
    to [0, 1] (torch's global generator, which the trainer seeds per epoch). Applied to the training batches, so a
    model learns to read through the sensor noise the scorecard's stability measure adds."""
    if max_sigma <= 0:
        return images
    sigma = torch.rand(images.shape[0], 1, 1, 1, device=images.device) * max_sigma
    return (images + sigma * torch.randn_like(images)).clamp_(0.0, 1.0)


def _shape_augmentation(cfg: TrainConfig) -> List[Callable]:
    steps: List[Callable] = []
    if cfg.augmentation == "none":
        return steps
    if cfg.augmentation == "crop-flip":
        if cfg.crop_padding > 0:
            steps.append(transforms.RandomCrop(cfg.image_size, padding=cfg.crop_padding, fill=0))
        if cfg.flip:
            steps.append(transforms.RandomHorizontalFlip())
        return steps
    one_of: List[Callable] = []
    if cfg.rotation_degrees > 0:
        one_of.append(transforms.RandomRotation(cfg.rotation_degrees))
    if cfg.skew > 0:
        one_of.append(transforms.RandomPerspective(distortion_scale=cfg.skew, p=1.0))
    if cfg.shear_degrees > 0:
        one_of.append(transforms.RandomAffine(degrees=0, shear=(-cfg.shear_degrees, cfg.shear_degrees)))
    if one_of:
        steps.append(transforms.RandomChoice(one_of))
    if cfg.flip:
        steps.append(transforms.RandomHorizontalFlip())
    return steps
