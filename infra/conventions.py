"""What the CDK app writes into the template and the local plane reads back."""

# Resource metadata on each Lambda layer: "runtime" (our code), "dependencies" (arm64 wheels the local
# plane skips: its interpreter has the same lockfile's packages) or "data" (mounted files, e.g. the KB).
LAYER_KIND_METADATA = "agentplane:layer-kind"

# Metadata on each SageMaker model: the folder under containers/ whose app serves it (the local plane runs that
# app on loopback for the endpoints that use the model).
CONTAINER_METADATA = "agentplane:container"
