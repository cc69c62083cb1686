"""Datasets, from files to uint8 images in memory or streamed from packed shards; views are made later.

The dataset catalog (:mod:`simclr.data.catalog`) names every dataset and loads any split of one into an
:class:`~simclr.data.store.ImageStore` (``images`` uint8 ``(N, 3, H, W)``, ``labels`` with -1 for unlabeled,
optional regression ``factors``); :class:`~simclr.data.source.DataSource` is how a command describes its
data and decides whether to hold or stream it (:mod:`simclr.data.packed` writes the shards,
:mod:`simclr.data.streaming` reads them); :class:`~simclr.data.loader.InMemoryBatchLoader` draws
reproducible, resumable, rank-sharded batches from a store by index.
"""
