"""A trained backbone or classifier used on any folder of images, a piece of the folder at a time: embeddings
in the formats other tools read (:mod:`.embed`, ``simclr embed``) and the classes a saved classifier predicts
(:mod:`.predict`, ``simclr predict``). Nothing here measures the backbone; that is :mod:`..protocols`' job.
"""
