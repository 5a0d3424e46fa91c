"""One-off: set the papers collection's ef_search of an embedded index folder (Chroma applies it when a process loads
the graph):

    python docs/query-cost/set_ef.py W/index-100000 1000 [COLLECTION]
"""

import sys

import chromadb
from chromadb.config import Settings

client = chromadb.PersistentClient(path=sys.argv[1] + "/chroma", settings=Settings(anonymized_telemetry=False))
collection = client.get_collection(sys.argv[3] if len(sys.argv) > 3 else "papers")
print(collection.name, collection.configuration_json["hnsw"]["ef_search"], "->", sys.argv[2])
collection.modify(configuration={"hnsw": {"ef_search": int(sys.argv[2])}})
