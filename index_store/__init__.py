"""Persistence: the SQLite catalog (the source of truth) with its one reader (``catalog``) and one writer
(``writer``), the search index published beside it (``publish``, ``faiss_index``, ``ondisk``) with its
manifest, the clean journal, the writer lock, atomic writes."""
