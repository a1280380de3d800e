"""Image data for colorization: where images come from and how they reach a model.

* ``sources``: one loader per dataset the reports used, any folder, and the
  embedded sample set; ``load_split(name, root)`` -> train/val/test file lists.
* ``splits``: seeded splits by counts or fractions, and their JSON manifest.
* ``sample``: builds the small sample set every command uses when given no data.
* ``decode``: checks and decodes single files (any format, EXIF, 16-bit, alpha).
* ``pipeline``: the tf.data pipeline -> ``(L, ab)`` batches; the grayscale filter.
* ``plan``: how the pipeline decodes and resizes each file cheaply, chosen from its probe.
* ``legacy``: the 2018 report's Keras ``ImageDataGenerator`` path (deprecated
  upstream; kept for fidelity, tf.data is the default).
"""
