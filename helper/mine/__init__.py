"""MINE: mutual information estimated by training a critic (SPEC 8).

    critic        the critic, its training loop (CriticTraining), the reference protocol and its
                  diagnostics, the held-out bound and its jackknife (HeldOutGroups)
    heldout       the held-out protocol: early stopping on the smoothed held-out bound
    report        which protocol runs (estimate), the printed lines, results rows and TensorBoard layout
    calibration   problems of known MI and `mine.py --calibrate`
"""
