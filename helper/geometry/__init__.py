"""Closed-form measures of a checkpoint's features: no critic is trained.

    measures      the geometry of the features: effective rank, within-class variability
                  collapse (NC1), class-distance normalised variance (CDNV), class separation
                  (R^2), mean feature norm
    information   I(X;T_s) and I(T_s;Y) of the features with Gaussian noise added, T_s = T + s Z,
                  from the mixture of Gaussians centred at the sample's features
    calibration   problems of known answer for both, and `geometry.py --calibrate`
"""
