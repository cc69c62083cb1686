"""The measurements of a frozen backbone, each returning one entry of ``metrics.json``: the linear probe by
L-BFGS (:mod:`.linear`, fitted by :mod:`.lbfgs`, or by :mod:`.minibatch_linear` when the features exceed the
memory budget) and by SGD on augmented images (:mod:`.linear_sgd`), weighted kNN (:mod:`.knn`), Spirograph's
factor regression (:mod:`.regression`), and the studies built on them: label efficiency, robustness to the
shifts of :mod:`.shifts`, invariance to the augmentation, and the scan of the backbones a run kept. The
dataset's standard protocol (:mod:`.standard`) is what ``simclr evaluate`` runs first.
"""
