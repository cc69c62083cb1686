"""The networks, built from plain values: backbones with their stems (``backbones``), projection heads
(``heads``), the pixel autoencoder whose embedding seeds the ``ae`` head (``autoencoder``), the SimCLR network
that joins a backbone and a head (``simclr_model``), and the backbone file with its metadata (``backbone_file``,
readable without torch). Import each name from its module; the network a config describes is built by
:mod:`simclr.model_from_config`."""
