"""The runs of the comparison matrix: one per (model, loss, seed, fold), as ``dvc.yaml`` names them."""

import argparse
import itertools
import typing
from dataclasses import dataclass

from defectseg.config.compare import CompareParams
from defectseg.config.losses import LossName
from defectseg.config.models import ModelName


@dataclass(frozen=True)
class Run:
    """One branch of the train and evaluate matrix stages."""

    model: str
    loss: str
    seed: int
    fold: int

    @property
    def name(self) -> str:
        """The folder name of the run's outputs (``models/<name>``, ``evaluation/<name>``, ...)."""
        return f"{self.model}-{self.loss}-seed{self.seed}-fold{self.fold}"

    @property
    def arm(self) -> str:
        """The (model, loss) pair the run belongs to: what the comparison compares."""
        return f"{self.model}-{self.loss}"


def matrix_runs(compare: CompareParams) -> list[Run]:
    """Every run of the matrix, model-major then loss, seed and fold (``dvc.yaml``'s order)."""
    return [Run(*values) for values in itertools.product(compare.models, compare.losses, compare.seeds, compare.folds)]


def run_arguments(description: str) -> Run:
    """The run (``--model``, ``--loss``, ``--seed``, ``--fold``) of a matrix stage (train, evaluate)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, choices=typing.get_args(ModelName))
    parser.add_argument("--loss", required=True, choices=typing.get_args(LossName))
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--fold", type=int, required=True)
    args = parser.parse_args()
    return Run(args.model, args.loss, args.seed, args.fold)
