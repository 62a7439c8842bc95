# CPU image; its default command runs the test suite (`make test`).
FROM python:3.11-slim
# npm and Chromium: the browser page's dependency and the browser its tests drive
RUN apt-get update && apt-get install -y --no-install-recommends make npm chromium \
    && rm -rf /var/lib/apt/lists/*
# The CPU build of torch comes from PyTorch's own index (PyPI's Linux wheel bundles CUDA).
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_NO_CACHE_DIR=1 PYTHON=python3
WORKDIR /app
COPY Makefile requirements.txt requirements-dev.txt pyproject.toml README.md ./
COPY src ./src
RUN make install
COPY . .
RUN make install
CMD ["make", "test"]
