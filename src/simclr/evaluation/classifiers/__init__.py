"""Classifiers trained on labelled images: a head on a backbone, trained by one loop with early stopping on a
validation part of the labels (:mod:`.fitting`), fed crops and flips made on the device. Fine-tuning the run's
backbone (:mod:`.finetune`) and the supervised baseline from random or ImageNet weights (:mod:`.supervised`)
both use it, on the training labels :mod:`.training_labels` chooses; the heads are in :mod:`.classifier_heads`,
and every trained classifier is saved for ``simclr predict`` by :mod:`.saved_classifier`. Only the core modules
of :mod:`simclr.evaluation` are used here, never a protocol.
"""
