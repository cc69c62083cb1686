"""Evaluation of frozen representations: how good a pretrained backbone is, and what to do with it next.

The modules at this level are the core every evaluation shares: the commands' settings (:mod:`.options`),
finding a run and rebuilding its backbone (:mod:`.loading`), the labelled splits held in memory or streamed
(:mod:`.splits`), frozen features (:mod:`.features`, :mod:`.view_features`) and their cache on disk
(:mod:`.feature_cache`), the :class:`~.session.EvalSession` that ties them together for one run, the metrics
(:mod:`.metrics`) and ``metrics.json`` (:mod:`.results`, :mod:`.recording`). Around the core:

* :mod:`.classifiers`: training a classifier on labelled images (fine-tuning, the supervised baseline) and
  keeping it for ``simclr predict``;
* :mod:`.protocols`: the measurements of frozen features (linear probes, kNN, regression, the studies);
* :mod:`.inference`: using a trained backbone or classifier on any image folder (``embed``, ``predict``);
* :mod:`.weights`: backbone files in and out of other tools' formats (``export``, ``import-weights``).

Inside this package imports point one way: inference and weights may use protocols, classifiers and the core;
protocols may use classifiers and the core; classifiers only the core.
"""
