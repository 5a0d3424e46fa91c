"""Loaders, the Chroma store, embeddings and the lexical (BM25) index. Imports no other paperchat package."""
