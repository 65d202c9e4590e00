"""The ``preprocess`` section: how every pair is resized and its mask binarized once."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from defectseg.config.loading import PARAMS_FILE, load_section
from defectseg.config.section import Section


class PreprocessParams(Section):
    geometry: Literal["squash", "scale"]
    image_size: Annotated[int, Field(ge=16, le=4096)] | Annotated[list[Annotated[int, Field(ge=16, le=4096)]], Field(min_length=2, max_length=2)]
    scale: Annotated[float, Field(gt=0.0, le=4.0)]
    mask_threshold: Annotated[int, Field(ge=0, le=254)]
    mask_coverage: Annotated[float, Field(gt=0.0, le=1.0)]

    @property
    def height_width(self) -> tuple[int, int]:
        """The squash target size as (height, width)."""
        if isinstance(self.image_size, int):
            return self.image_size, self.image_size
        return self.image_size[0], self.image_size[1]

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a tile of ``height`` x ``width`` is resized to: ``image_size`` with
        geometry squash; with geometry scale, its own size times ``scale`` (aspect ratio kept)."""
        if self.geometry == "squash":
            return self.height_width
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))


def load_preprocess_params(path: str | Path = PARAMS_FILE) -> PreprocessParams:
    """The ``preprocess`` section of ``params.yaml``, checked alone: what the ``preprocess`` stage reads."""
    return load_section(path, "preprocess", PreprocessParams)
