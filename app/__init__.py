"""cnnviz's web layer: a thin FastAPI app over cnncore."""
