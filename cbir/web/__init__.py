"""`cbir serve`: the web interface and HTTP API over an index (FastAPI on uvicorn)."""
