"""train_ctc.py as torchrun starts it, each process also saving what must agree across processes.

    torchrun --nproc_per_node 2 tests/ctc_ranks.py <folder> <train_ctc.py flags>

After every epoch (after the info bank and the memory refresh at the end of stage 1) each
process writes <folder>/rank{r}_epoch{e}.pt: its CTC state (instance memory, both contrast
memories, Z, info bank) and its model's state. With CTC_DIE_IN_EPOCH=E every process dies
right after writing epoch E's file, before the run saves that epoch: a killed run, to be
resumed. Used by tests/test_ctc_ddp.py; not collected by pytest.
"""
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train_ctc  # noqa: E402
import util  # noqa: E402
from helper import loops  # noqa: E402


def main():
    folder, argv = Path(sys.argv[1]), sys.argv[2:]
    rank = int(os.environ["RANK"])
    die_in = int(os.environ.get("CTC_DIE_IN_EPOCH", "0"))
    end_epoch = loops.CTCMethod.end_epoch

    def end_epoch_and_save(method, epoch):
        end_epoch(method, epoch)
        torch.save({"method": method.state_dict(), "model": method.model.state_dict()},
                   folder / f"rank{rank}_epoch{epoch}.pt")
        if epoch == die_in:
            raise KeyboardInterrupt

    loops.CTCMethod.end_epoch = end_epoch_and_save
    util.run_main(lambda: train_ctc.main(argv))


if __name__ == "__main__":
    main()
