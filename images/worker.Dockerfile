# syntax=docker/dockerfile:1.17
# check=error=true
#
# A rank: `runahead worker`, started by the operator, one pod per rank. CUDA 13 + cuDNN 9 (what the
# CUDA provider of onnxruntime 1.29.0 that scripts/setup-cuda-provider.sh installs is built against),
# linux/amd64 only. Build from the repository root:
#
#   docker build -f images/worker.Dockerfile -t <registry>/runahead-worker:<version> .
#
# Bases are pinned by exact tag; pin digests too where your registry policy requires it: they cannot
# be resolved from the machine these files are written on. glibc is needed (onnxruntime-node's
# native library), so neither base is Alpine.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY core core
COPY worker worker
COPY operator operator
COPY cli cli
# tsc through node itself: the `node` devDependency's shim on PATH is not installed without scripts.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && find core worker operator cli -type f ! -name '*.ts' -exec cp --parents {} dist/ \;
# The ort_io addon (IO binding: K/V off the GPU into reused pinned buffers; worker/native/): plain C
# against Node-API and onnxruntime's C API headers, no link-time dependency, so it runs on the CUDA base.
COPY scripts/build-native.sh scripts/
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && scripts/build-native.sh

# Production dependencies, then onnxruntime's CUDA provider, installed by the same script as
# `make cuda` (its header says where the provider comes from and why the versions must match).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/setup-cuda-provider.sh scripts/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && scripts/setup-cuda-provider.sh /app \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && rm -rf .cache \
 && npm cache clean --force \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +

FROM ${CUDA_IMAGE}
# Node.js from the official image (one static-enough binary: glibc and libstdc++ are in the base).
COPY --from=deps /usr/local/bin/node /usr/local/bin/node
# glibc keeps freed blocks under 4 MiB for reuse and returns larger ones (per-layer tensors) to the
# kernel (worker/runtime/ort.ts MALLOC_TUNING_ENV, chosen by measurement; read at process start).
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=4194304 \
    MALLOC_TRIM_THRESHOLD_=17179869184 \
    MALLOC_TOP_PAD_=1073741824 \
    HOME=/tmp
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /src/dist dist
COPY --from=build /src/build/native build/native
COPY package.json ./
COPY bin bin
# Numeric, so that Kubernetes can check runAsNonRoot; HOME is /tmp because the pod's root filesystem
# may be read-only.
USER 65532:65532
# The rank protocol (gRPC) and the K/V socket (core/api/v1alpha1/names.ts RANK_PORT, RANK_KV_PORT).
EXPOSE 50051 50052
ENTRYPOINT ["node", "/app/bin/runahead.js"]
CMD ["worker", "--help"]
