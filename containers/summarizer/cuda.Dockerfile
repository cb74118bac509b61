# The summarizer on GPU instances (ml.g*, ml.p*): ONNX Runtime's CUDA build, which the core prefers when
# present (CUDAExecutionProvider, then the CPU). Same build context and layout as cpu.Dockerfile.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/program PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /opt/program

COPY containers/summarizer/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt onnxruntime-gpu==1.31.1 && rm /tmp/requirements.txt

COPY contracts/ contracts/
COPY containers/ containers/
COPY functions/summarizer/ functions/summarizer/

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin serving \
    && mkdir -p /opt/ml/model && chown -R 10001 /opt/ml
USER 10001

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2)"]
ENTRYPOINT ["python", "-m", "containers.summarizer.app"]
CMD ["serve"]
