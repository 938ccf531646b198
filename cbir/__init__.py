"""cbir: content-based image retrieval and gallery cleaning.

Importing this package is cheap on purpose: TensorFlow, FAISS and the model
are loaded only by the functions that need them, so ``cbir --help`` and
``cbir status`` stay instant.
"""

__version__ = "0.1.0"
