# The summarizer on CPU instances (ml.c*, ml.m*). Build context: the staged directory infra makes
# (containers/, contracts/, functions/summarizer/), see infra/components/sagemaker_endpoint.py.
FROM public.ecr.aws/docker/library/python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/program
WORKDIR /opt/program

COPY containers/summarizer/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt onnxruntime==1.31.1 && rm /tmp/requirements.txt

COPY contracts/ contracts/
COPY containers/ containers/
COPY functions/summarizer/ functions/summarizer/

# SageMaker mounts the model artefact at /opt/ml/model; without one the bundled scorer serves.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin serving \
    && mkdir -p /opt/ml/model && chown -R 10001 /opt/ml
USER 10001

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2)"]
# SageMaker starts the container as `docker run IMAGE serve`.
ENTRYPOINT ["python", "-m", "containers.summarizer.app"]
CMD ["serve"]
