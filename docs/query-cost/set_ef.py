"""One-off: set the papers collection's ef_search of an embedded index folder (Chroma applies it when a process loads
the graph):

    python docs/query-cost/set_ef.py W/index-100000 1000
"""

import sys

import chromadb
from chromadb.config import Settings

client = chromadb.PersistentClient(path=sys.argv[1] + "/chroma", settings=Settings(anonymized_telemetry=False))
for name in [c.name for c in client.list_collections()]:
    collection = client.get_collection(name)
    if collection.configuration_json["hnsw"]["max_neighbors"] == 64 or name == "papers":
        print(name, collection.configuration_json["hnsw"]["ef_search"], "->", sys.argv[2])
        collection.modify(configuration={"hnsw": {"ef_search": int(sys.argv[2])}})
