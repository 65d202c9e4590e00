"""The resumable state of a run (``last.pt``): saved after every epoch, resumed only by the same settings, data and code."""

import sys
from pathlib import Path

from defectseg.errors import DataError
from defectseg.models.checkpoint import load_checkpoint, save_checkpoint
from defectseg.training.code_fingerprint import changed_modules
from defectseg.training.run_spec import RunSpec
from defectseg.training.trainer import Trainer

CHECKPOINT_FORMAT = "defectseg-checkpoint-1"


def resume_state(path: Path, spec: RunSpec) -> dict | None:
    """The saved state of an interrupted run of the same ``spec`` (settings, data, code), else None.

    ``last.pt`` is a resume aid, not a result: one that cannot be read, or was saved by
    other settings or other code, is passed over with one ``warning:`` line saying why,
    and the run starts from scratch.
    """
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
    except DataError as exc:
        print(f"warning: {exc}; discarding it and training from scratch", file=sys.stderr)
        path.unlink()
        return None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != spec.fingerprint():
        print(f"warning: {path}: saved with other settings or data; training from scratch", file=sys.stderr)
        return None
    changed = changed_modules(state.get("code", {}), spec.code)
    if changed:
        print(f"warning: {path}: saved by other code ({', '.join(changed)} changed); training from scratch", file=sys.stderr)
        return None
    return state


def save_last(path: Path, trainer: Trainer, spec: RunSpec, history: list[dict], best: dict, cost: dict[str, float]) -> None:
    save_checkpoint(
        path,
        {
            **cost,
            "format": CHECKPOINT_FORMAT,
            "fingerprint": spec.fingerprint(),
            "code": spec.code,
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            **({} if trainer.ema is None else {"ema": trainer.ema.state_dict()}),
            "history": history,
            "best_model": best["weights"],
            "best_val_iou": best["val_iou"],
            "best_epoch": best["epoch"],
        },
    )
