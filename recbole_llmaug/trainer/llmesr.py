"""The trainer of LLM-ESR (Liu et al., NeurIPS 2024): RecBole's ``Trainer`` plus the per-epoch
refresh of the self-distillation teacher."""

from recbole.trainer import Trainer


class LLMESRTrainer(Trainer):
    """With ``teacher: epoch`` the similar users' representations are computed once per epoch, with
    the parameters of the epoch's start: this trainer marks the model's teacher cache stale before
    every training epoch, and the model recomputes it on its first use in that epoch."""

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.invalidate_teacher()
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
