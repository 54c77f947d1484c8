"""A tiny FastAPI app for the example image: `seal build examples/python-fastapi.yaml`."""

import platform

import fastapi

app = fastapi.FastAPI(title="seal example")


@app.get("/")
def hello() -> dict[str, str]:
    return {
        "hello": "from a seal image",
        "python": platform.python_version(),
        "fastapi": fastapi.__version__,
    }
