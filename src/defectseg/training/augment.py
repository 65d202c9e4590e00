"""Training augmentation with albumentations, applied to image and mask together."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # it checks for updates over the network on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from defectseg.config.train import AugmentParams  # noqa: E402


def build_augment(params: AugmentParams) -> A.Compose:
    """Crops (a share of them holding defect), flips, 90-degree rotations, brightness/contrast and small shifts.

    A tile smaller than the crop (tiles keep their own sizes with ``preprocess.geometry: scale``)
    is first mirrored out to the crop's size, image and mask alike."""
    shift = (-params.shift_limit, params.shift_limit)
    crop = []
    if params.crop_size:
        side, share = params.crop_size, params.crop_defect_share
        crop = [
            A.PadIfNeeded(side, side, border_mode=cv2.BORDER_REFLECT_101),
            A.OneOf([A.CropNonEmptyMaskIfExists(side, side, p=share), A.RandomCrop(side, side, p=1 - share)], p=1),
        ]
    return A.Compose(
        [
            *crop,
            A.HorizontalFlip(p=params.hflip),
            A.VerticalFlip(p=params.vflip),
            A.RandomRotate90(p=params.rotate90),
            A.RandomBrightnessContrast(
                brightness_limit=params.brightness_contrast_limit,
                contrast_limit=params.brightness_contrast_limit,
                p=params.brightness_contrast,
            ),
            A.Affine(translate_percent={"x": shift, "y": shift}, border_mode=cv2.BORDER_REFLECT_101, p=params.shift),
        ]
    )
