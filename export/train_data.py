"""Training data for the tiny model: synthetic scenes as model inputs, targets and masks."""

from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np
import torch

from xdepth.preprocess import resize_for_model
from xdepth.registry import Card, Preprocess
from xdepth.scenes import TRAIN_SEEDS, make_scene

RENDER_SIDES = (192, 224, 256, 288, 320)  # training scenes vary in size and aspect ratio
MASK_UPSCALE = 2  # masks are learned at twice the output size: held-out scenes are 256 px


def _pool_item(
    job: tuple[Preprocess, int, int, int, tuple[int, int], tuple[int, int], bool],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training scene, rendered and resized (a picklable unit of make_pool's work)."""
    pre, seed, height, width, out_hw, mask_hw, normalise = job
    scene = make_scene(seed, height, width)
    model_input = resize_for_model(scene.rgb, pre, (pre.height, pre.width))
    inv = 1.0 / scene.depth_m
    if normalise:
        inv = inv / inv.max()  # scale-free target: what the max-scaled recipe needs
    target = cv2.resize(inv, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA)
    cover = cv2.resize(scene.mask.astype(np.float32), mask_hw[::-1], interpolation=cv2.INTER_AREA)
    return model_input, target, cover >= 0.5


def make_pool(
    card: Card,
    n: int,
    first_seed: int,
    out_hw: tuple[int, int],
    normalise: bool = True,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` training scenes: uint8 model inputs (n,h,w,3), inverse-depth targets (n,oh,ow) and
    foreground masks at MASK_UPSCALE times the output size.

    Each scene is rendered at a size drawn from RENDER_SIDES and resized with the card's
    preprocessing; the target is the area-averaged inverse depth at the model's output size,
    which keeps the sub-pixel position of object edges. The mask stays finer than the
    output because the engine thresholds the prediction after upsampling it. Scenes are
    seeded one by one, so `workers` processes give the same pool as one.
    """
    if first_seed < TRAIN_SEEDS.start or first_seed + n > TRAIN_SEEDS.stop:
        raise ValueError(f"training seeds {first_seed}..{first_seed + n} leave TRAIN_SEEDS")
    pre = card.preprocess
    sizes = np.random.default_rng(first_seed).choice(RENDER_SIDES, size=(n, 2))
    mask_hw = (out_hw[0] * MASK_UPSCALE, out_hw[1] * MASK_UPSCALE)
    jobs = [
        (pre, first_seed + i, int(sizes[i, 0]), int(sizes[i, 1]), out_hw, mask_hw, normalise)
        for i in range(n)
    ]
    inputs = np.empty((n, pre.height, pre.width, 3), np.uint8)
    targets = np.empty((n, *out_hw), np.float32)
    masks = np.empty((n, *mask_hw), bool)
    with contextlib.ExitStack() as stack:
        if workers > 1:  # spawn, not fork: the parent already runs OpenMP threads
            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context))
            items = pool.map(_pool_item, jobs, chunksize=32)
        else:
            items = map(_pool_item, jobs)
        for i, (model_input, target, mask) in enumerate(items):
            inputs[i], targets[i], masks[i] = model_input, target, mask
    return inputs, targets, masks


def normalise(batch_u8: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """uint8 (b,h,w,3) -> float32 (b,3,h,w), the same arithmetic as xdepth.preprocess."""
    x = batch_u8.float()
    if pre.do_rescale:
        x = x * pre.rescale_factor
    if pre.do_normalize:
        x = (x - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    return x.permute(0, 3, 1, 2).contiguous()
