"""Helpers for tests that run the real Trainer: a quiet one, and a run interrupted after some epochs then resumed."""
import pytest

from protopnet_trainer.train import Trainer


class Interrupt(Exception):
    """Stands for a killed run: raised from the end-of-epoch hook."""


def quiet_trainer(cfg, folder):
    return Trainer(cfg, str(folder), progress=False, log=lambda line: None)


def interrupt_after(cfg, folder, epochs_done: int) -> None:
    """Runs cfg in folder and stops it (as a crash would) once `epochs_done` epochs are checkpointed."""
    def stop(epoch):
        if epoch == epochs_done - 1:
            raise Interrupt()

    with pytest.raises(Interrupt):
        quiet_trainer(cfg, folder).run(on_epoch_end=stop)


def straight_and_resumed(cfg, tmp_path, epochs_done: int = 2):
    """The final weights of an uninterrupted run, and the trainer of the same run interrupted and resumed (not yet
    continued), so a test can check its state before calling run()."""
    straight = quiet_trainer(cfg, tmp_path / "straight").run().model.state_dict()
    interrupt_after(cfg, tmp_path / "resumed", epochs_done)
    resumed_trainer = quiet_trainer(cfg, tmp_path / "resumed")
    assert resumed_trainer.resume() and resumed_trainer.epoch == epochs_done
    return straight, resumed_trainer
